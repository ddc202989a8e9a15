# A peer of the network (valid keys) announces the model, serves its index
# honestly, then answers every chunk request with bytes that do not match the
# chunk's id (right length, one byte changed). The node under test must catch
# every such chunk, drop the peer each time, ban it after repeated offences
# (it is then refused at the handshake and `ferryctl peers` says "banned"),
# stay up with bounded memory, and complete the model byte-identical from an
# honest peer with nothing corrupt in its store.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

hostile_setup 8
node_start b
rss_watch b

say "the hostile peer is b's only source: index pieces honest, chunks wrong"
evil_start evil b wrong-bytes --store "$T/evil/state" --model llm --repeat 8 --gap 300 \
	--hold 20000
evil_wait evil
eid=$(evil_id evil)
grep -q "peer $eid sent a bad chunk" "$T/b/log" || fail "b did not report a bad chunk from $eid"
grep -q "banning peer $eid" "$T/b/log" || fail "b did not ban $eid after repeated bad chunks"
[ "$(evil_val evil dropped)" -ge 3 ] || fail "b dropped the hostile peer only $(evil_val evil dropped) times"
[ "$(evil_val evil refused)" -ge 1 ] || fail "the banned peer could still connect"
say "dropped $(evil_val evil dropped) times, then refused $(evil_val evil refused) times"
st=$(peer_state b "$eid")
[ "$st" = - ] || [ "$st" = banned ] || fail "ferryctl peers shows $eid as '$st', not banned"
grep -q "model llm version 1 complete" "$T/b/log" && fail "b completed from the hostile peer"
alive b

finish_from_seed 60
