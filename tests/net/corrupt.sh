# A peer that serves corrupted chunk data (the test hook
# FERRY_TEST_CORRUPT_SERVE=1 flips a byte of every data chunk it sends) is caught
# by the receiver's check of every chunk against its id, dropped, and banned
# after repeated offences; the model then completes from an honest peer,
# byte-identical, and nothing corrupt was stored.
. "$FERRY_SRCDIR/tests/net/lib.sh"

net_init
make_model "$T/model" 8 4

node_make a "models.want=*"
node_make m "models.want=*"
node_make b "models.want=*" "peers.peer=$(addr_of m)" "peers.peer=$(addr_of a)"
publish a llm 1 "$T/model"
# m holds the same signed version: a copy of a's store (without a's node key).
cp -r "$T/a/state" "$T/m/state"
rm -f "$T/m/state/node.key" "$T/m/state/lock"

say "b meets only the corrupting peer m first"
node_start m FERRY_TEST_CORRUPT_SERVE=1
node_start b
wait_log b "peer $(short_id m) sent a bad chunk" 30
wait_log b "banning peer $(short_id m)" 60
grep -q "model llm version 1 complete" "$T/b/log" && fail "b completed from a corrupt peer"

say "the honest peer a arrives: b completes from it"
node_start a
wait_log b "model llm version 1 complete" 60
export_check b llm@1 "$T/model"
ctl --store "$T/b/state" --trust "$PUB" verify llm@1 >/dev/null ||
	fail "b's stored chunks do not verify"
for n in a b m; do node_stop "$n"; done
