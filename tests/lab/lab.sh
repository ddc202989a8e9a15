# shellcheck shell=bash
# The ferry network lab: an HQ and S sites of K nodes each, every site behind
# a slow, lossy, long WAN link that may drop out. Sourced by the scenarios
# (tests/lab/*.sh, bench/swarm); needs bash and root. docs/lab.md has the
# picture, every parameter and the helpers.
#
#   . tests/lab/lab.sh
#   lab_require || exit 77          # root, netns, tun, tc, nft, the relay
#   lab_up                          # builds it; lab_down runs on any exit
#   lab_exec s1n1 ping -c1 "$(lab_addr hq)"
#   read -r in out < <(lab_wan_bytes 1)
#
# Call lab_up from the script's main shell, never inside $(...) or a pipe:
# the relays it starts end when their parent shell ends (-P), and the exit
# trap that removes the lab belongs to the shell that ran lab_up.
#
# What it builds (names below are what lab_exec and lab_addr take):
#
#   hq   10.90.0.1 (on lo), one TUN per site: wanS = 10.91.S.1
#    |   loss S->HQ here (nft, on wanS ingress); rate HQ->S (tbf on wanS)
#    |
#    |   delay_relay: LAB_DELAY ms each way
#    |
#   sSr  the site's router: wan = 10.91.S.2, bridge br0 = 10.90.S.1/24
#    |   loss HQ->S here (nft, on wan ingress); rate S->HQ (tbf on wan)
#   sSn1 .. sSnK   10.90.S.11 .. 10.90.S.(10+K) on veths into br0
#
# An outage is a drop-all rule on the sending side of both ends (postrouting
# of sSr's wan and of hq's wanS), so nothing crosses while the link is down
# and the static routes stay (`ip link set down` would delete them).
# quickstart's ASan and distcheck stages skip whole suites through FERRY_SKIP
# (a list of suite names) to stay within their time budgets.
case " ${FERRY_SKIP:-} " in *" lab "*) echo "skipped: FERRY_SKIP names the lab suite"; exit 77 ;; esac

LAB_SITES=${LAB_SITES:-2}
LAB_NODES=${LAB_NODES:-3}
LAB_RATE=${LAB_RATE:-4mbit}
LAB_DELAY=${LAB_DELAY:-100}
LAB_LOSS=${LAB_LOSS:-1}
# LAB_RATE_UP, LAB_RATE_DOWN, LAB_LOSS_UP and LAB_LOSS_DOWN default to
# LAB_RATE and LAB_LOSS when lab_up runs, so a scenario may set those after
# sourcing this file.
LAB_QUEUE=${LAB_QUEUE:-100}
LAB_LAN_RATE=${LAB_LAN_RATE:-0}
# A TCP congestion control for ferryd's wan_congestion (tests/lab/ferry.sh):
# LAB_CC=cubic is a machine whose kernel does not give ferryd BBR. Empty:
# ferryd's default. (A namespace's default cannot be set to a control
# outside net.ipv4.tcp_allowed_congestion_control, so other tools keep the
# host's.)
LAB_CC=${LAB_CC:-}
LAB_OUTAGE=${LAB_OUTAGE:-}
LAB_OUTAGE_COUNT=${LAB_OUTAGE_COUNT:-0}
LAB_OUTAGE_SITES=${LAB_OUTAGE_SITES:-}
LAB_PREFIX=${LAB_PREFIX:-fl$$}
LAB_RELAY=${LAB_RELAY:-${FERRY_BUILDDIR:-build}/tools/delay_relay}
LAB_LOCK=${LAB_LOCK:-/run/lock/ferry-lab.lock}
[ -d "${LAB_LOCK%/*}" ] || LAB_LOCK=${TMPDIR:-/tmp}/ferry-lab.lock
LAB_LOCK_WAIT=${LAB_LOCK_WAIT:-900}
# The lab's temporary directory, set by lab_up (never taken from the
# environment: lab_down removes it).
LAB_DIR=

lab__lockfd=
lab__pids=

lab_log() {
	printf 'lab: %s\n' "$*" >&2
}

# lab_require: 0 if this machine can run the lab, else 1 with the reason on
# stderr (scenarios then exit 77, "skipped").
lab_require() {
	local t
	if [ "$(id -u)" -ne 0 ]; then
		lab_log "needs root (network namespaces, tc, nftables)"
		return 1
	fi
	for t in ip tc nft flock python3; do
		command -v "$t" >/dev/null 2>&1 || {
			lab_log "needs $t"
			return 1
		}
	done
	[ -c /dev/net/tun ] || {
		lab_log "needs /dev/net/tun"
		return 1
	}
	[ -x "$LAB_RELAY" ] || {
		lab_log "needs $LAB_RELAY (make tools/delay_relay)"
		return 1
	}
	if ! ip netns add "${LAB_PREFIX}-probe" 2>/dev/null; then
		lab_log "cannot create a network namespace"
		return 1
	fi
	if ! ip netns exec "${LAB_PREFIX}-probe" nft add table inet probe 2>/dev/null; then
		ip netns del "${LAB_PREFIX}-probe"
		lab_log "nftables does not work in a namespace"
		return 1
	fi
	ip netns del "${LAB_PREFIX}-probe"
	return 0
}

# The namespace behind a lab name (hq, sSr, sSnK).
lab__ns() {
	printf '%s-%s' "$LAB_PREFIX" "$1"
}

# lab_addr NAME: the address of a node (hq, sSnK) or a site router (sSr).
lab_addr() {
	local s k
	case $1 in
	hq) echo 10.90.0.1 ;;
	s*r)
		s=${1#s}
		echo "10.90.${s%r}.1"
		;;
	s*n*)
		s=${1#s}
		k=${s#*n}
		echo "10.90.${s%%n*}.$((10 + k))"
		;;
	*)
		lab_log "lab_addr: unknown name '$1'"
		return 1
		;;
	esac
}

# lab_nodes: every node name, HQ first; lab_site_nodes S: the nodes of site S.
lab_site_nodes() {
	local k
	for k in $(seq 1 "$LAB_NODES"); do
		printf 's%dn%d\n' "$1" "$k"
	done
}
lab_nodes() {
	local s
	echo hq
	for s in $(seq 1 "$LAB_SITES"); do
		lab_site_nodes "$s"
	done
}

# lab_exec NAME CMD...: run CMD inside that namespace (without the lab's lock).
lab_exec() {
	local ns
	ns=$(lab__ns "$1")
	shift
	if [ -n "$lab__lockfd" ]; then
		ip netns exec "$ns" "$@" {lab__lockfd}>&-
	else
		ip netns exec "$ns" "$@"
	fi
}

# Bits per second of a tc-style rate (4mbit, 500kbit, 1gbit, 8000bit, 8000;
# bps, kbps, mbps, gbps are bytes per second, as in tc).
lab__bps() {
	awk -v r="$1" 'BEGIN {
		n = r + 0; u = tolower(r); sub(/^[0-9.]+/, "", u)
		m["bit"] = 1; m[""] = 1; m["kbit"] = 1e3; m["mbit"] = 1e6; m["gbit"] = 1e9
		m["kibit"] = 1024; m["mibit"] = 1048576; m["gibit"] = 1073741824
		m["bps"] = 8; m["kbps"] = 8e3; m["mbps"] = 8e6; m["gbps"] = 8e9
		if (!(u in m)) exit 1
		printf "%d\n", n * m[u] }'
}

# tbf on DEV in namespace NS at RATE, queueing up to LAB_QUEUE ms of it.
lab__shape() {
	local ns=$1 dev=$2 rate=$3 bps burst
	[ "$rate" = 0 ] && return 0
	bps=$(lab__bps "$rate") || {
		lab_log "bad rate '$rate'"
		return 1
	}
	# The bucket holds 10 ms of the rate, at least two full-size packets.
	burst=$((bps / 800))
	[ "$burst" -lt 3028 ] && burst=3028
	tc -n "$ns" qdisc replace dev "$dev" root tbf rate "$bps"bit burst "$burst" \
		latency "${LAB_QUEUE}ms"
}

# An nft rule dropping PERCENT (may be fractional) of the packets, or nothing.
lab__loss_rule() {
	local per10k
	per10k=$(awk -v p="$1" 'BEGIN { if (p !~ /^[0-9]*\.?[0-9]+$/ || p > 100) exit 1
		printf "%d", p * 100 + 0.5 }') || {
		lab_log "bad loss '$1' (a percentage)"
		return 1
	}
	[ "$per10k" -gt 0 ] && echo "numgen random mod 10000 < $per10k drop"
	return 0
}

lab__mkns() {
	local ns
	ns=$(lab__ns "$1")
	ip netns add "$ns" || return 1
	echo "$ns" >>"$LAB_DIR/namespaces"
	# No IPv6: its router solicitations and MLD reports would cross the WAN.
	ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 \
		net.ipv6.conf.default.disable_ipv6=1 net.ipv4.ip_forward="$2" || return 1
	ip -n "$ns" link set lo up
}

lab__site_up() {
	local s=$1 hq r k n loss_up loss_down
	hq=$(lab__ns hq)
	r=$(lab__ns "s${s}r")
	lab__mkns "s${s}r" 1 || return 1
	ip -n "$r" link add br0 type bridge forward_delay 0 &&
		ip -n "$r" addr add "10.90.$s.1/24" dev br0 &&
		ip -n "$r" link set br0 up || return 1
	for k in $(seq 1 "$LAB_NODES"); do
		n=$(lab__ns "s${s}n$k")
		lab__mkns "s${s}n$k" 0 || return 1
		ip link add name eth0 netns "$n" type veth peer name "n$k" netns "$r" &&
			ip -n "$r" link set "n$k" master br0 up &&
			ip -n "$n" addr add "$(lab_addr "s${s}n$k")/24" dev eth0 &&
			ip -n "$n" link set eth0 up &&
			ip -n "$n" route add default via "10.90.$s.1" || return 1
		if [ "$LAB_LAN_RATE" != 0 ]; then
			lab__shape "$n" eth0 "$LAB_LAN_RATE" &&
				lab__shape "$r" "n$k" "$LAB_LAN_RATE" || return 1
		fi
	done

	# The WAN: a TUN at each end, joined by the relay.
	ip -n "$r" tuntap add dev wan mode tun &&
		ip -n "$hq" tuntap add dev "wan$s" mode tun &&
		ip -n "$r" addr add "10.91.$s.2" peer "10.91.$s.1" dev wan &&
		ip -n "$hq" addr add "10.91.$s.1" peer "10.91.$s.2" dev "wan$s" &&
		ip -n "$r" link set wan up &&
		ip -n "$hq" link set "wan$s" up &&
		ip -n "$r" route add default dev wan &&
		ip -n "$hq" route add "10.90.$s.0/24" dev "wan$s" src 10.90.0.1 || return 1
	lab__shape "$r" wan "$LAB_RATE_UP" && lab__shape "$hq" "wan$s" "$LAB_RATE_DOWN" ||
		return 1

	# Loss where a packet arrives, so each end's interface counters count
	# what was put on the link; outages where packets leave, so nothing is.
	loss_down=$(lab__loss_rule "$LAB_LOSS_DOWN") && loss_up=$(lab__loss_rule "$LAB_LOSS_UP") ||
		return 1
	ip netns exec "$r" nft -f - <<EOF || return 1
table inet lab {
	chain wan_in { $loss_down; }
	chain wan_out { }
	chain pre { type filter hook prerouting priority -300; iifname "wan" jump wan_in; }
	chain post { type filter hook postrouting priority 300; oifname "wan" jump wan_out; }
}
EOF
	ip netns exec "$hq" nft -f - <<EOF || return 1
table inet lab {
	chain in$s { $loss_up; }
	chain out$s { }
	chain pre$s { type filter hook prerouting priority -300; iifname "wan$s" jump in$s; }
	chain post$s { type filter hook postrouting priority 300; oifname "wan$s" jump out$s; }
}
EOF
	"$LAB_RELAY" -P -d "$LAB_DELAY" "$r:wan" "$hq:wan$s" \
		2>>"$LAB_DIR/relay$s.log" {lab__lockfd}>&- &
	lab__pids="$lab__pids $!"
}

# Wait until every WAN TUN has its relay attached (carrier up).
lab__wait_relays() {
	local s i
	for s in $(seq 1 "$LAB_SITES"); do
		for i in $(seq 1 100); do
			ip -n "$(lab__ns "s${s}r")" -o link show wan | grep -q NO-CARRIER || break
			sleep 0.05
		done
		if ip -n "$(lab__ns "s${s}r")" -o link show wan | grep -q NO-CARRIER; then
			lab_log "the delay relay of site $s did not attach; see $LAB_DIR/relay$s.log"
			cat "$LAB_DIR/relay$s.log" >&2
			return 1
		fi
	done
}

# lab_wan_down S / lab_wan_up S: start or end an outage of site S's WAN link.
lab_wan_down() {
	ip netns exec "$(lab__ns "s$1r")" nft 'flush chain inet lab wan_out; add rule inet lab wan_out drop' &&
		ip netns exec "$(lab__ns hq)" nft "flush chain inet lab out$1; add rule inet lab out$1 drop" &&
		echo "down $1 $(date +%s.%N)" >>"$LAB_DIR/outages"
}
lab_wan_up() {
	ip netns exec "$(lab__ns "s$1r")" nft 'flush chain inet lab wan_out' &&
		ip netns exec "$(lab__ns hq)" nft "flush chain inet lab out$1" &&
		echo "up $1 $(date +%s.%N)" >>"$LAB_DIR/outages"
}

# lab_outage_start S DOWN UP [COUNT [FIRST]]: in the background, keep site S's
# link up for UP seconds (the first time FIRST seconds), then down for DOWN
# seconds, COUNT times (0: until lab_down). Each switch is logged as
# "down|up S EPOCH" in $LAB_DIR/outages.
lab_outage_start() {
	local s=$1 down=$2 up=$3 count=${4:-0} first=${5:-$3} parent=$$
	(
		# Sleep in a child we can end with the loop, so lab_down leaves no
		# stray sleep behind.
		trap 'kill $napper 2>/dev/null; exit 0' TERM
		nap() {
			sleep "$1" &
			napper=$!
			wait "$napper"
		}
		i=0
		while [ "$count" -eq 0 ] || [ "$i" -lt "$count" ]; do
			if [ "$i" -eq 0 ]; then nap "$first"; else nap "$up"; fi
			kill -0 "$parent" 2>/dev/null || exit 0
			lab_wan_down "$s" || exit 1
			nap "$down"
			lab_wan_up "$s" || exit 1
			i=$((i + 1))
		done
	) {lab__lockfd}>&- &
	lab__pids="$lab__pids $!"
}

# lab_wan_bytes S: "IN OUT", the bytes (IP packets, headers included) that
# crossed site S's WAN link towards the site and away from it since lab_up.
# Counted at the router's TUN: what HQ put on the link (packets later lost
# included) and what the site put on it. lab_wan_packets S: the same in packets.
lab__wan_stat() {
	ip netns exec "$(lab__ns "s$1r")" sh -c \
		"cat /sys/class/net/wan/statistics/rx_$2 /sys/class/net/wan/statistics/tx_$2" |
		paste -sd ' '
}
lab_wan_bytes() {
	lab__wan_stat "$1" bytes
}
lab_wan_packets() {
	lab__wan_stat "$1" packets
}

# lab_up: build the lab from the LAB_* variables. Takes the lab lock (one lab
# at a time on a machine, so scenarios run by `make check -j` do not share
# the CPU and skew each other's figures), then installs the exit trap.
lab_up() {
	local s spec
	LAB_RATE_UP=${LAB_RATE_UP:-$LAB_RATE}
	LAB_RATE_DOWN=${LAB_RATE_DOWN:-$LAB_RATE}
	LAB_LOSS_UP=${LAB_LOSS_UP:-$LAB_LOSS}
	LAB_LOSS_DOWN=${LAB_LOSS_DOWN:-$LAB_LOSS}
	exec {lab__lockfd}>"$LAB_LOCK" || return 1
	if ! flock -w "$LAB_LOCK_WAIT" "$lab__lockfd"; then
		lab_log "another lab held $LAB_LOCK for $LAB_LOCK_WAIT s"
		return 1
	fi
	LAB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ferry-lab.XXXXXX") || return 1
	: >"$LAB_DIR/namespaces"
	: >"$LAB_DIR/outages"
	trap lab_down EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
	lab__mkns hq 1 &&
		ip -n "$(lab__ns hq)" addr add 10.90.0.1/32 dev lo || return 1
	for s in $(seq 1 "$LAB_SITES"); do
		lab__site_up "$s" || {
			lab_log "building site $s failed"
			return 1
		}
	done
	lab__wait_relays || return 1
	if [ -n "$LAB_OUTAGE" ]; then
		spec=${LAB_OUTAGE/:/ }
		for s in ${LAB_OUTAGE_SITES:-$(seq 1 "$LAB_SITES")}; do
			# shellcheck disable=SC2086
			lab_outage_start "$s" $spec "$LAB_OUTAGE_COUNT"
		done
	fi
	lab_log "up: hq + $LAB_SITES sites x $LAB_NODES nodes; WAN $LAB_RATE_DOWN down," \
		"$LAB_RATE_UP up, $LAB_DELAY ms one way, loss $LAB_LOSS_DOWN% down," \
		"$LAB_LOSS_UP% up${LAB_OUTAGE:+; outages $LAB_OUTAGE (down:up s)}; $LAB_DIR"
}

# lab_down: first call the scenario's lab_on_down function with the exit
# status, if it defines one (to show logs on failure, say); then remove
# everything lab_up made: background loops and relays, every
# process inside the lab's namespaces, the namespaces (with their links,
# qdiscs and nft tables), the temporary directory, the lock. Safe to call
# twice and after a partial lab_up.
lab_down() {
	local rc=$? p ns nss left
	# A second ctrl-C, or a signal sent to the whole process group, must not
	# cut the cleanup short.
	trap '' INT TERM HUP PIPE
	trap - EXIT
	[ -n "$LAB_DIR" ] || return "$rc"
	if declare -F lab_on_down >/dev/null; then
		lab_on_down "$rc"
	fi
	for p in $lab__pids; do
		kill "$p" 2>/dev/null
	done
	nss=$(cat "$LAB_DIR/namespaces" 2>/dev/null)
	for ns in $nss; do
		# shellcheck disable=SC2046
		kill $(ip netns pids "$ns" 2>/dev/null) 2>/dev/null
	done
	for _ in $(seq 1 40); do
		left=
		for ns in $nss; do
			left="$left$(ip netns pids "$ns" 2>/dev/null)"
		done
		[ -z "$left" ] && break
		sleep 0.05
	done
	for ns in $nss; do
		# shellcheck disable=SC2046
		kill -KILL $(ip netns pids "$ns" 2>/dev/null) 2>/dev/null
	done
	for p in $lab__pids; do
		wait "$p" 2>/dev/null
	done
	for ns in $nss; do
		ip netns del "$ns" 2>/dev/null
	done
	rm -rf "$LAB_DIR"
	LAB_DIR=
	lab__pids=
	if [ -n "$lab__lockfd" ]; then
		exec {lab__lockfd}>&-
		lab__lockfd=
	fi
	trap - INT TERM HUP PIPE
	return "$rc"
}
