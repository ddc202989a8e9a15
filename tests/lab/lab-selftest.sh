#!/bin/bash
# The lab checks itself: with a 4 Mbit/s WAN, 100 ms one way and 1% loss each
# way, the round trip is 200 ms (± 15%), one TCP flow each way gets 2.5 to 3.9
# Mbit/s (the TCP payload ceiling is 3.86), a 10 s outage stops traffic and
# traffic resumes after it (a flow started before it completes), and lab_down
# leaves nothing behind. Root only:
# exits 77 (skipped) where namespaces cannot be made. About 50 s.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
set -u

src=${FERRY_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export FERRY_BUILDDIR=${FERRY_BUILDDIR:-$src/build}
# shellcheck source=tests/lab/lab.sh
. "$src/tests/lab/lab.sh"
tool=$src/tests/lab/labtool.py

LAB_SITES=1
LAB_NODES=2
LAB_RATE=4mbit
LAB_DELAY=100
LAB_LOSS=1
LAB_OUTAGE=

lab_require || exit 77

failed=0
check() { # check WHAT OK-EXPRESSION (awk) FIGURES...
	local what=$1 expr=$2
	shift 2
	if echo "$@" | awk "{ exit !($expr) }"; then
		echo "ok: $what: $*"
	else
		echo "FAIL: $what: $* (wanted $expr)"
		failed=1
	fi
}

links_before=$(ip -o link | awk -F': ' '{ print $2 }' | sort)
tables_before=$(nft list tables 2>/dev/null | sort)

lab_up || exit 1
dir=$LAB_DIR
hq=$(lab_addr hq)
n1=$(lab_addr s1n1)
relays=$lab__pids

# Round trip: UDP probes from a site node to HQ and back.
lab_exec hq python3 "$tool" echo 7000 &
echo_server=$!
sleep 0.3
# shellcheck disable=SC2046
set -- $(lab_exec s1n1 python3 "$tool" rtt "$hq" 7000 20 0.1)
echo "rtt: $*"
check "probes answered (of 20, 1% loss each way)" '$1 >= 16' "$4"
check "average round trip ms (200 +- 15%)" '$1 >= 170 && $1 <= 230' "$6"

# One TCP flow each way at once (the directions share nothing but the ACKs).
lab_exec s1n1 python3 "$tool" sink 5001 >"$dir/down.out" &
down=$!
lab_exec hq python3 "$tool" sink 5002 >"$dir/up.out" &
up=$!
sleep 0.3
lab_exec hq python3 "$tool" source "$n1" 5001 10 &
lab_exec s1n1 python3 "$tool" source "$hq" 5002 10
wait "$down" "$up"
echo "download: $(cat "$dir/down.out") (bytes, s, Mbit/s)"
echo "upload: $(cat "$dir/up.out") (bytes, s, Mbit/s)"
check "one TCP flow down, Mbit/s" '$1 >= 2.5 && $1 <= 3.9' "$(awk '{ print $3 }' "$dir/down.out")"
check "one TCP flow up, Mbit/s" '$1 >= 2.5 && $1 <= 3.9' "$(awk '{ print $3 }' "$dir/up.out")"

# Outage: 4 MB from HQ (about 10 s of the link); the link goes down 5 s in,
# for 10 s. Nothing may arrive while it is down, and every byte must arrive
# in the end (TCP's retransmission back-off decides when after the outage).
total=4000000
lab_exec s1n2 timeout 90 python3 "$tool" sink 5003 "$dir/flow.log" >"$dir/flow.out" &
sink=$!
sleep 0.3
lab_exec hq python3 "$tool" send "$(lab_addr s1n2)" 5003 "$total" &
lab_outage_start 1 10 5 1
sleep 7
# shellcheck disable=SC2046
set -- $(lab_exec s1n1 python3 "$tool" rtt "$hq" 7000 5 0.2)
check "probes answered during the outage" '$1 == 0' "$4"
wait "$sink"
echo "flow through the outage: $(cat "$dir/flow.out") (bytes, s, Mbit/s)"
t_down=$(awk '$1 == "down" { print $3 }' "$dir/outages")
t_up=$(awk '$1 == "up" { print $3 }' "$dir/outages")
# Bytes received by a time: the last log line at or before it.
bytes_at() {
	awk -v t="$1" '$1 <= t { b = $2 } END { print b + 0 }' "$dir/flow.log"
}
# What was in flight (queue and relay) may still land in the first second.
before=$(bytes_at "$(echo "$t_down" | awk '{ printf "%.3f", $1 + 1 }')")
during=$(($(bytes_at "$t_up") - before))
final=$(awk 'END { print $2 }' "$dir/flow.log")
check "bytes received before the outage (> 0.5 MB)" '$1 > 500000' "$before"
check "bytes received while the link was down" '$1 == 0' "$during"
check "bytes received after the outage" '$1 > 0' "$((final - before - during))"
check "bytes received in all (of $total)" "\$1 == $total" "$final"
# shellcheck disable=SC2046
set -- $(lab_exec s1n1 python3 "$tool" rtt "$hq" 7000 5 0.2)
check "probes answered after the outage" '$1 >= 4' "$4"

kill "$echo_server"
wait "$echo_server" 2>/dev/null
lab_down
left=$(ip netns list | grep -c "^$LAB_PREFIX-")
check "namespaces left by lab_down" '$1 == 0' "$left"
alive=0
for p in $relays; do
	kill -0 "$p" 2>/dev/null && alive=$((alive + 1))
done
check "relays or loops left by lab_down" '$1 == 0' "$alive"
check "temporary directory left by lab_down" '$1 == 0' "$([ -e "$dir" ] && echo 1 || echo 0)"
[ "$links_before" = "$(ip -o link | awk -F': ' '{ print $2 }' | sort)" ]
check "links changed in the root namespace" '$1 == 0' "$?"
[ "$tables_before" = "$(nft list tables 2>/dev/null | sort)" ]
check "nft tables changed in the root namespace" '$1 == 0' "$?"
exit "$failed"
