# Six peers of the network, each with a fresh identity (the network key is
# the only gate, so identities cost nothing), each send a message of valid
# frames just under the 16 MiB message cap and keep it unfinished with a
# 1-byte frame every 20 s, so the connection never looks dead. The node
# must keep its memory bounded (HOSTILE_RSS_MAX_MIB) while they hold on,
# stay up, and still complete the model from an honest peer.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

hostile_setup 8
node_start b
rss_watch b

say "6 peers with fresh identities each hold a message just under the cap for 30 s"
for i in 1 2 3 4 5 6; do
	evil_start "hold$i" b oversize --variant 3 --fresh-key --hold 30000
done
for i in 1 2 3 4 5 6; do
	evil_wait "hold$i"
	say "hold$i: $(grep "conn 0: \(still up\|dropped\)" "$T/hold$i.evil")"
done
alive b

finish_from_seed 60
