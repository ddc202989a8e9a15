# A peer of the network floods data for requests never made (4 MiB per real
# request), then answers each chunk request with one byte more than the chunk
# has. The node must drop the unrequested data without keeping it, refuse the
# over-long chunk, drop and then ban the peer, stay up with bounded memory and
# complete the model byte-identical from an honest peer.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

hostile_setup 8
node_start b
rss_watch b

say "the hostile peer floods unrequested data, then sends over-long chunks"
evil_start evil b more-bytes --store "$T/evil/state" --model llm --repeat 8 --gap 300 \
	--hold 20000 --flood 4194304
evil_wait evil
eid=$(evil_id evil)
grep -q "peer $eid: wrong length for chunk" "$T/b/log" ||
	fail "b did not refuse the over-long chunk from $eid"
grep -q "banning peer $eid" "$T/b/log" || fail "b did not ban $eid after repeated offences"
[ "$(evil_val evil refused)" -ge 1 ] || fail "the banned peer could still connect"
say "dropped $(evil_val evil dropped) times, then refused $(evil_val evil refused) times"
st=$(peer_state b "$eid")
[ "$st" = - ] || [ "$st" = banned ] || fail "ferryctl peers shows $eid as '$st', not banned"
alive b

finish_from_seed 60
