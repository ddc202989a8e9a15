# Helpers for the hostile-input scenarios (sourced, not run). They sit on
# top of tests/net/lib.sh (private ferryd processes in a temporary
# directory $T) and add the hostile peer, memory and liveness checks.
#
# A scenario skips (exit 77, with the reason) when this build has no
# daemon core or no multi-daemon harness yet: that is detected from the
# build and the tree, never assumed.
# quickstart's ASan and distcheck stages skip whole suites through FERRY_SKIP
# (a list of suite names) to stay within their time budgets.
case " ${FERRY_SKIP:-} " in *" hostile "*) echo "skipped: FERRY_SKIP names the hostile suite"; exit 77 ;; esac

: "${FERRY_SRCDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${FERRY_BUILDDIR:=$FERRY_SRCDIR/build}"
export FERRY_SRCDIR FERRY_BUILDDIR

hostile_skip() {
	echo "SKIP: $*"
	exit 77
}

[ -f "$FERRY_SRCDIR/tests/net/lib.sh" ] ||
	hostile_skip "tests/net/lib.sh is not in this tree: the multi-daemon harness (branch node) has not landed"
[ -x "$FERRY_BUILDDIR/ferryd" ] && [ -x "$FERRY_BUILDDIR/ferryctl" ] ||
	hostile_skip "ferryd or ferryctl is not built in $FERRY_BUILDDIR"
nm "$FERRY_BUILDDIR/libferry.a" 2>/dev/null | grep -q ' T node_new$' ||
	hostile_skip "this build has no daemon core (node_new is not in libferry.a)"
"$FERRY_BUILDDIR/ferryctl" help 2>&1 | grep -q '^  publish ' ||
	hostile_skip "this ferryctl cannot publish (no 'publish' command)"
EVIL=$FERRY_BUILDDIR/tests/hostile/evil_peer
STORE_CHECK=$FERRY_BUILDDIR/tests/hostile/store_check
[ -x "$EVIL" ] && [ -x "$STORE_CHECK" ] ||
	hostile_skip "tests/hostile/evil_peer or store_check is not built (make check builds them)"

. "$FERRY_SRCDIR/tests/net/lib.sh"

# The most RssAnon a daemon may reach in a scenario: the 64 MiB the design
# aims at plus a margin (LMDB's mapped pages are not anonymous memory).
: "${HOSTILE_RSS_MAX_MIB:=80}"

HOSTILE_PIDS=""
HOSTILE_MOUNTS=""

# Our own background processes (hostile peers, samplers) die before lib.sh's
# cleanup kills the daemons; mounts go after the daemons are gone.
hostile_cleanup() {
	hstatus=$?
	set +e
	for p in $HOSTILE_PIDS; do
		kill "$p" 2>/dev/null
	done
	if [ -n "$HOSTILE_MOUNTS" ]; then
		for n in $NODES; do
			if [ -f "$T/$n/pid" ]; then
				kill -9 "$(cat "$T/$n/pid")" 2>/dev/null
			fi
		done
		wait 2>/dev/null
		for m in $HOSTILE_MOUNTS; do
			umount "$m" 2>/dev/null || umount -l "$m"
		done
	fi
	if [ "$hstatus" -ne 0 ]; then
		for f in "$T"/*.evil; do
			[ -f "$f" ] || continue
			echo "---- $(basename "$f") (last 20 lines) ----" >&2
			tail -n 20 "$f" >&2
		done
	fi
	(exit "$hstatus")
	cleanup
}
trap hostile_cleanup EXIT INT TERM

# True if this ferryctl has the command (the socket commands land separately).
has_ctl() {
	ctl help 2>&1 | grep -q "^  $1\( \|$\)"
}

# hostile_setup MIB: the network, a model of MIB MiB, node b (the node under
# test, wants everything, dials no one) and node a (the honest seed, holds
# the model, dials b). $T/evil/state is a copy of a's store for the hostile
# peer to announce and serve from.
hostile_setup() {
	net_init
	make_model "$T/model" "$1" 7
	node_make b "models.want=*" "node.min_free_space=0"
	node_make a "models.want=*" "peers.peer=$(addr_of b)"
	publish a llm 1 "$T/model"
	mkdir -p "$T/evil"
	cp -r "$T/a/state" "$T/evil/state"
	rm -f "$T/evil/state/node.key" "$T/evil/state/lock"
}

# evil_start NAME TARGET MODE [evil_peer options...]: run the hostile peer in
# the background against node TARGET; its event lines go to $T/NAME.evil.
evil_start() {
	en=$1
	et=$2
	em=$3
	shift 3
	"$EVIL" --mode "$em" --connect "$(addr_of "$et")" --netkey "$T/network.key" "$@" \
		>"$T/$en.evil" 2>&1 &
	echo $! >"$T/$en.evilpid"
	HOSTILE_PIDS="$HOSTILE_PIDS $!"
}

# evil_wait NAME: wait for the hostile peer to finish (exit status 0 wanted).
evil_wait() {
	st=0
	wait "$(cat "$T/$1.evilpid")" || st=$?
	[ "$st" -eq 0 ] || fail "evil_peer $1 failed (status $st): $(tail -n 3 "$T/$1.evil")"
}

# evil_val NAME KEY: a counter from the hostile peer's summary line.
evil_val() {
	sed -n "s/.*summary: .* $2=\([0-9]*\).*/\1/p" "$T/$1.evil" | tail -n 1
}

# evil_id NAME: the hostile peer's short node id (as ferryd's log shows it).
evil_id() {
	sed -n 's/.*our node id \([0-9a-f]\{12\}\).*/\1/p' "$T/$1.evil" | head -n 1
}

# wait_evil NAME REGEX SECONDS: wait for a line in the hostile peer's output.
wait_evil() {
	wdl=$(($(date +%s) + $3))
	until grep -q -- "$2" "$T/$1.evil"; do
		[ "$(date +%s)" -lt "$wdl" ] || fail "evil_peer $1: no '$2' after $3 s"
		sleep 0.2
	done
}

# alive NODE: the daemon is still running.
alive() {
	[ -f "$T/$1/pid" ] && kill -0 "$(cat "$T/$1/pid")" 2>/dev/null ||
		fail "ferryd $1 is not running any more"
}

# rss_kb NODE: the daemon's RssAnon in KiB.
rss_kb() {
	awk '/^RssAnon:/ { print $2 }' "/proc/$(cat "$T/$1/pid")/status"
}

# rss_watch NODE: sample the daemon's RssAnon every 0.2 s in the background;
# the highest value goes to $T/NODE.rssmax (KiB), the first to $T/NODE.rss0.
rss_watch() {
	rss_kb "$1" >"$T/$1.rss0"
	cp "$T/$1.rss0" "$T/$1.rssmax"
	(
		pid=$(cat "$T/$1/pid")
		max=$(cat "$T/$1.rss0")
		while v=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null); do
			[ -n "$v" ] || break
			if [ "$v" -gt "$max" ]; then
				max=$v
				# Replaced whole: rss_check must never read it half written.
				echo "$max" >"$T/$1.rssmax.new" && mv "$T/$1.rssmax.new" "$T/$1.rssmax"
			fi
			sleep 0.2
		done
	) &
	HOSTILE_PIDS="$HOSTILE_PIDS $!"
}

# mib KIB: KiB as MiB with one decimal.
mib() {
	awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'
}

# rss_check NODE: the highest RssAnon seen stayed under HOSTILE_RSS_MAX_MIB.
rss_check() {
	r0=$(cat "$T/$1.rss0")
	rmax=$(cat "$T/$1.rssmax")
	rnow=$(rss_kb "$1")
	say "ferryd $1 RssAnon: $(mib "$r0") MiB at start, $(mib "$rmax") MiB at most, $(mib "$rnow") MiB now (limit $HOSTILE_RSS_MAX_MIB MiB)"
	[ "$rmax" -le $((HOSTILE_RSS_MAX_MIB * 1024)) ] ||
		fail "ferryd $1 reached $(mib "$rmax") MiB of RssAnon, over $HOSTILE_RSS_MAX_MIB MiB"
}

# peer_state NODE SHORT_ID [FIELD]: the state (or FIELD) `ferryctl --json
# peers` shows for that peer ("" if it is not listed); "-" if this ferryctl
# has no peers command.
peer_state() {
	if ! has_ctl peers; then
		echo -
		return 0
	fi
	ctl --socket "$T/$1/ferryd.sock" --json peers | python3 -c '
import json, sys
doc = json.load(sys.stdin)
rows = doc.get("peers", doc) if isinstance(doc, dict) else doc
for r in rows:
    if str(r.get("node_id", "")).startswith(sys.argv[1]):
        print(r.get(sys.argv[2], ""))
        break
' "$2" "${3:-state}"
}

# ban_check NODE SHORT_ID REASON: NODE banned the peer (docs/protocol.md,
# "Misbehaviour"): one log line naming its id, socket address and REASON
# (what it did last), and `ferryctl peers` shows it as banned.
ban_check() {
	nb=$(grep -c "banning peer $2 (127\.0\.0\.1:[0-9]*) for 600 s after 3 offences, the last $3\$" \
		"$T/$1/log" || true)
	[ "$nb" -eq 1 ] || fail "$1 logged $nb bans of $2 for $3, expected one: $(grep "banning peer $2" "$T/$1/log")"
	say "$(grep "banning peer $2" "$T/$1/log" | sed 's/^<[0-9]>//')"
	bst=$(peer_state "$1" "$2")
	[ "$bst" = - ] || [ "$bst" = banned ] || fail "ferryctl peers shows $2 as '$bst', not banned"
	[ "$bst" = - ] && return 0
	left=$(($(peer_state "$1" "$2" banned_until) - $(date +%s)))
	[ "$left" -gt 540 ] && [ "$left" -le 601 ] ||
		fail "ferryctl peers gives $2's ban $left s to run, not about 600"
	ctl --socket "$T/$1/ferryd.sock" peers | grep "^$2 .* banned (10m left) " >/dev/null ||
		fail "ferryctl peers does not show $2 as 'banned (10m left)': $(ctl --socket "$T/$1/ferryd.sock" peers)"
	say "ferryctl peers: $2 is $bst, $left s to run"
}

# refusals NODE SHORT_ID: how many times NODE refused that peer at the
# handshake (a banned node is not allowed in; the hostile peer cannot always
# tell this from being dropped at once, so NODE's log is the witness).
refusals() {
	grep -c "handshake failed: node $2 ([^)]*) is not allowed" "$T/$1/log" || true
}

# status_field NODE KEY: a field of `ferryctl --json status`; "-" without the command.
status_field() {
	if ! has_ctl status; then
		echo -
		return 0
	fi
	ctl --socket "$T/$1/ferryd.sock" --json status | python3 -c '
import json, sys
doc = json.load(sys.stdin)
doc = doc.get("status", doc)
v = doc.get(sys.argv[1])
print("" if v is None else v)
' "$2"
}

# store_verify NODE: every stored chunk and manifest of the (stopped) node
# checks out, and LMDB's own tool opens the environment.
store_verify() {
	mdb_stat -e "$T/$1/state/store" >/dev/null 2>"$T/err" ||
		fail "mdb_stat cannot open $1's store: $(cat "$T/err")"
	"$STORE_CHECK" "$T/$1/state" >"$T/$1.check" 2>&1 ||
		fail "$1's store holds bad entries: $(tail -n 5 "$T/$1.check")"
	say "$1's store: $(tail -n 1 "$T/$1.check")"
}

# finish_from_seed: start the honest seed a, wait for b to complete the
# model, check b is still up and its memory stayed bounded, then stop both
# and check the export byte for byte and every stored chunk.
finish_from_seed() {
	say "the honest seed a arrives: b completes from it"
	node_start a
	wait_log b "model llm version 1 complete" "${1:-60}"
	alive b
	rss_check b
	node_stop a
	node_stop b
	export_check b llm@1 "$T/model"
	store_verify b
}
