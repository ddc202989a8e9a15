# A peer of the network sends a frame header declaring 2^31-1 bytes (with
# and without the MORE bit) and a message of valid frames past the message
# cap: each connection must be closed before anything is allocated for it;
# after the third the peer is banned (docs/protocol.md, "Misbehaviour") and
# refused at the handshake. The daemon must stay up with bounded memory and
# complete the model byte-identical from an honest peer. (oversize-hold.sh
# holds messages just under the cap open instead.)
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

hostile_setup 8
node_start b
rss_watch b

say "frame headers over the cap, a message over the cap, then three more tries"
evil_start evil b oversize --repeat 6 --gap 300 --hold 10000
evil_wait evil
[ "$(evil_val evil up)" -eq 6 ] || fail "only $(evil_val evil up) of 6 connections came up"
[ $(($(evil_val evil dropped) + $(evil_val evil refused))) -eq 6 ] ||
	fail "b kept an oversize connection: $(grep summary "$T/evil.evil")"
eid=$(evil_id evil)
[ "$(refusals b "$eid")" -eq 3 ] || fail "b refused the banned peer $(refusals b "$eid") times, not 3"
grep -q "frame length 2147483647 outside" "$T/b/log" || fail "b's log does not name the oversize frame"
grep -q "above 262144 bytes (only MANIFEST may be larger)" "$T/b/log" || fail "b's log does not name the oversize message"
ban_check b "$eid" "a message over its cap"
alive b

finish_from_seed 60
