# LAN discovery: two daemons with no configured peers find each other by
# their multicast beacons (authenticated with the network key) and move a
# model; a third one with another network key is never dialed. Skipped
# (exit 77) where this host does not loop multicast back.
. "$FERRY_SRCDIR/tests/net/lib.sh"

net_init
make_model "$T/model" 2 8
ctl netkey --out "$T/other-network.key" >/dev/null
# Beacons come from the host's LAN address, so the daemons listen on all of them.
LISTEN_HOST=0.0.0.0 node_make a "models.want=*" "peers.lan_discovery=on"
LISTEN_HOST=0.0.0.0 node_make b "models.want=*" "peers.lan_discovery=on"
LISTEN_HOST=0.0.0.0 NETKEY_FILE="$T/other-network.key" node_make x "models.want=*" \
	"peers.lan_discovery=on"
publish a llm 1 "$T/model"
node_start x
node_start a
node_start b
if grep -q "cannot send beacons" "$T/a/log"; then
	echo "no multicast on this host: skipped"
	exit 77
fi
wait_log b "LAN discovery: node $(short_id a)" 20
wait_log b "model llm version 1 complete" 30
export_check b llm@1 "$T/model"
grep -q "LAN discovery: node $(short_id x)" "$T/a/log" "$T/b/log" && fail "a node of another network was discovered"
grep -q "LAN discovery" "$T/x/log" && fail "x discovered a node of another network"
for n in a b x; do node_stop "$n"; done
