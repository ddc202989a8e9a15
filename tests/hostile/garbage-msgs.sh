# A peer of the network sends 100 messages of unknown types (to be skipped:
# a later version may add messages), then one malformed message per
# connection: bad msgpack, containers declaring 2^32-1 elements or bytes,
# nesting 100000 deep, wrong field types, a HELLO after the handshake, data
# past its total, an empty message, type 0, stray bytes, a digest over its
# cap. Every malformed message must close the connection; with a new
# identity each time no one is banned, but one identity that keeps at it is
# banned after its third (docs/protocol.md, "Misbehaviour") and refused at
# the handshake from then on. The node must stay up and complete the model
# byte-identical from an honest peer.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

hostile_setup 8
node_start b
rss_watch b

say "12 connections, each with a new identity: unknown types, a PING, then one malformed message"
evil_start evil b garbage-msgs --repeat 12 --gap 200 --hold 8000 --fresh-key
evil_wait evil
[ "$(evil_val evil up)" -eq 12 ] || fail "only $(evil_val evil up) of 12 connections came up"
[ "$(evil_val evil pongs)" -eq 12 ] || fail "unknown message types were not skipped (PONGs: $(evil_val evil pongs))"
[ "$(evil_val evil dropped)" -eq 12 ] || fail "b dropped only $(evil_val evil dropped) of 12 malformed messages"
grep -q "banning peer" "$T/b/log" && fail "b banned a peer for one offence: $(grep "banning peer" "$T/b/log")"

say "5 connections from one identity: dropped 3 times, then banned"
evil_start same b garbage-msgs --repeat 5 --gap 200 --hold 8000
evil_wait same
eid=$(evil_id same)
[ "$(evil_val same dropped)" -eq 3 ] || fail "b dropped $(evil_val same dropped) of the first 3 malformed messages"
[ "$(refusals b "$eid")" -eq 2 ] || fail "b refused the banned peer $(refusals b "$eid") times, not twice"
ban_check b "$eid" "a malformed frame or message"
alive b

finish_from_seed 60
