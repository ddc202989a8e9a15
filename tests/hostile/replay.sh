# A peer of the network re-sends one of its own frames (the nonce has moved
# on: the frame must not open), then replays its first connection's handshake
# messages on a new connection (message 1 is genuine and may be answered,
# message 3 must not complete a handshake). The node must close both, not
# ban the peer for a single offence (docs/protocol.md, "Misbehaviour"), stay
# up, and complete the model byte-identical from an honest peer.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

hostile_setup 8
node_start b
rss_watch b

say "a replayed frame, then a replayed handshake (twice)"
evil_start evil b replay --repeat 3 --gap 300 --hold 12000
evil_wait evil
[ "$(evil_val evil up)" -eq 1 ] || fail "a replayed handshake came up"
[ "$(evil_val evil dropped)" -eq 1 ] || fail "b did not drop the connection with a replayed frame"
[ "$(evil_val evil hs_closed)" -eq 2 ] || fail "b did not close both replayed handshakes"
grep -q "does not authenticate" "$T/b/log" || fail "b's log does not report the replayed frame"
# One offence drops a peer; it takes three within an hour to ban it.
grep -q "banning peer" "$T/b/log" && fail "b banned the peer for one replayed frame"
say "replayed message 1 answered $(evil_val evil replay_msg2) times (genuine within the clock window)"
alive b

finish_from_seed 60
