# A peer of the network sends 100 messages of unknown types (to be skipped:
# a later version may add messages), then one malformed message per
# connection: bad msgpack, containers declaring 2^32-1 elements or bytes,
# nesting 100000 deep, wrong field types, a HELLO after the handshake, data
# past its total, an empty message, type 0, stray bytes, a digest over its
# cap. Every malformed message must close the connection; the node must stay
# up and complete the model byte-identical from an honest peer.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

hostile_setup 8
node_start b
rss_watch b

say "12 connections, each: unknown types, a PING, then one malformed message"
evil_start evil b garbage-msgs --repeat 12 --gap 200 --hold 8000
evil_wait evil
[ "$(evil_val evil up)" -eq 12 ] || fail "only $(evil_val evil up) of 12 connections came up"
[ "$(evil_val evil pongs)" -eq 12 ] || fail "unknown message types were not skipped (PONGs: $(evil_val evil pongs))"
[ "$(evil_val evil dropped)" -eq 12 ] || fail "b dropped only $(evil_val evil dropped) of 12 malformed messages"
eid=$(evil_id evil)
if grep -q "banning peer $eid" "$T/b/log"; then
	say "the repeat offender was banned"
else
	say "NOTE: b drops a peer for malformed messages but never bans it (bans count bad chunks only)"
fi
alive b

finish_from_seed 60
