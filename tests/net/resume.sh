# kill -9 a receiving daemon mid-transfer and restart it: it resumes from
# what its store holds and does not fetch committed chunks again. Under an
# 8 Mbit/s download limit one durability window is at most 1 MiB (DESIGN.md),
# so the bytes the node received over both runs, from its own counters, stay
# within the model's encoded size plus 1 MiB for the interruption.
. "$FERRY_SRCDIR/tests/net/lib.sh"

MIB=1048576
net_init
make_model "$T/model" 16 3

node_make a "models.want=*"
node_make b "models.want=*" "peers.peer=$(addr_of a)" "limits.download_rate=8mbit"
publish a llm 1 "$T/model"
node_start a
node_start b

say "let b receive a few MiB, then kill -9 it"
deadline=$(($(date +%s) + 60))
while :; do
	got=$(log_number b "bytes received in all" '; \([0-9]*\) bytes received in all')
	[ -n "$got" ] && [ "$got" -ge $((3 * MIB)) ] && break
	[ "$(date +%s)" -lt "$deadline" ] || fail "b received too little in 60 s"
	sleep 0.2
done
node_kill b
grep -q "model llm version 1 complete" "$T/b/log" && fail "b completed before the kill: the test proves nothing"
# Received before the kill, as of b's last commit (a lower bound of the truth).
first=$(log_number b "bytes received in all" '; \([0-9]*\) bytes received in all')

say "restart b: it resumes"
lines=$(wc -l <"$T/b/log")
node_start b
wait_log b "model llm version 1 complete" 90 "$lines"
present=$(tail -n +"$((lines + 1))" "$T/b/log" | sed -n 's/.*fetching llm@1: \([0-9]*\) of \([0-9]*\) bytes present.*/\1/p' | head -n 1)
need=$(tail -n +"$((lines + 1))" "$T/b/log" | sed -n 's/.*fetching llm@1: \([0-9]*\) of \([0-9]*\) bytes present.*/\2/p' | head -n 1)
second=$(tail -n +"$((lines + 1))" "$T/b/log" | sed -n 's/.*model llm version 1 complete (\([0-9]*\) bytes.*/\1/p')
say "model $need bytes; first run received $first, $present were present at restart, second run received $second"
[ -n "$present" ] && [ -n "$need" ] && [ -n "$second" ] || fail "b's log lacks its counters"
[ "$present" -gt 0 ] || fail "nothing was kept across the kill"
[ "$second" -le $((need - present + MIB)) ] ||
	fail "the second run received $second bytes: more than the $((need - present)) missing + 1 MiB"
[ $((first + second)) -le $((need + MIB)) ] ||
	fail "received $((first + second)) bytes in all for a model of $need: more than 1 MiB re-fetched"
export_check b llm@1 "$T/model"
node_stop b
node_stop a
