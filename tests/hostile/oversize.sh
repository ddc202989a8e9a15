# A peer of the network sends a frame header declaring 2^31-1 bytes (with
# and without the MORE bit) and a message of valid frames past the message
# cap: each connection must be closed before anything is allocated for it,
# the daemon must stay up with bounded memory and complete the model
# byte-identical from an honest peer. (oversize-hold.sh holds messages just
# under the cap open instead.)
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

hostile_setup 8
node_start b
rss_watch b

say "frame headers over the cap, a message over the cap (twice each)"
evil_start evil b oversize --repeat 6 --gap 300 --hold 10000
evil_wait evil
[ "$(evil_val evil up)" -eq 6 ] || fail "only $(evil_val evil up) of 6 connections came up"
[ "$(evil_val evil dropped)" -eq 6 ] || fail "b dropped only $(evil_val evil dropped) of 6 oversize connections"
grep -q "frame length 2147483647 outside" "$T/b/log" || fail "b's log does not name the oversize frame"
grep -q "above 262144 bytes (only MANIFEST may be larger)" "$T/b/log" || fail "b's log does not name the oversize message"
eid=$(evil_id evil)
if grep -q "banning peer $eid" "$T/b/log"; then
	say "the repeat offender was banned"
else
	say "NOTE: b drops a peer for framing errors but never bans it (bans count bad chunks only)"
fi
alive b

finish_from_seed 60
