# A receiving daemon interrupted twice mid-transfer — first kill -9, then a
# clean SIGTERM — resumes each time from what its store holds and does not
# fetch committed chunks again. Under an 8 Mbit/s download limit one
# durability window is at most 1 MiB (DESIGN.md), so the bytes the node
# received over its three runs, from its own counters, stay within the
# model's encoded size plus 1 MiB per interruption.
. "$FERRY_SRCDIR/tests/net/lib.sh"

MIB=1048576
net_init
make_model "$T/model" 16 3

node_make a "models.want=*"
node_make b "models.want=*" "peers.peer=$(addr_of a)" "limits.download_rate=8mbit"
publish a llm 1 "$T/model"
node_start a

# The log of b's current run (from line $from on).
run_log() {
	tail -n +"$((from + 1))" "$T/b/log"
}

# Bytes this run of b received, as of its last commit.
received() {
	run_log | sed -n 's/.*; \([0-9]*\) bytes received in all.*/\1/p' | tail -n 1
}

# present | need: what b found in its store when this run started.
present() {
	run_log | sed -n "s/.*fetching llm@1: \([0-9]*\) of \([0-9]*\) bytes present.*/\\$1/p" |
		head -n 1
}

# Start b and let it receive at least $1 bytes in this run.
run_until() {
	from=$(wc -l <"$T/b/log" 2>/dev/null || echo 0)
	node_start b
	deadline=$(($(date +%s) + 60))
	while :; do
		got=$(received)
		[ -n "$got" ] && [ "$got" -ge "$1" ] && break
		[ "$(date +%s)" -lt "$deadline" ] || fail "b received too little in 60 s"
		sleep 0.2
	done
	run_log | grep -q "model llm version 1 complete" &&
		fail "b completed before the interruption: the test proves nothing"
	return 0
}

say "run 1: b receives 3 MiB, then kill -9"
: >"$T/b/log"
run_until $((3 * MIB))
node_kill b
r1=$(received)

say "run 2: b resumes, receives 3 MiB more, then SIGTERM"
run_until $((3 * MIB))
p2=$(present 1)
need=$(present 2)
node_stop b
r2=$(received)
grep -q "<5>main: stopped" "$T/b/log" || fail "b did not stop cleanly"

say "run 3: b resumes and completes"
from=$(wc -l <"$T/b/log")
node_start b
wait_log b "model llm version 1 complete" 90 "$from"
p3=$(present 1)
r3=$(run_log | sed -n 's/.*model llm version 1 complete (\([0-9]*\) bytes.*/\1/p')

say "model $need bytes; runs received $r1, $r2, $r3; present at restarts $p2, $p3"
for v in "$r1" "$r2" "$r3" "$p2" "$p3" "$need"; do
	[ -n "$v" ] || fail "b's log lacks its counters"
done
[ "$p2" -gt 0 ] || fail "nothing was kept across the kill"
[ "$p3" -ge $((p2 + r2 - MIB)) ] ||
	fail "the clean stop kept $((p3 - p2)) of the $r2 bytes run 2 received"
[ "$r3" -le $((need - p3 + MIB)) ] ||
	fail "run 3 received $r3 bytes: more than the $((need - p3)) missing + 1 MiB"
[ $((r1 + r2 + r3)) -le $((need + 2 * MIB)) ] ||
	fail "received $((r1 + r2 + r3)) bytes in all for a model of $need: more than 1 MiB re-fetched per interruption"
export_check b llm@1 "$T/model"
node_stop b
node_stop a
