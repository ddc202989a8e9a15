# What a node must refuse, and must not pass on:
#  - a daemon with another network key completes no handshake, so it gets
#    no manifest and no chunk;
#  - a manifest signed by a publisher the node does not trust (a peer that
#    trusts a rogue key pushes it) is neither stored nor forwarded;
#  - an older signed version (a peer with the test hook
#    FERRY_TEST_GOSSIP_ALL=1 pushes every manifest it holds) is refused by a
#    node that holds a newer one, and not forwarded.
# Topology: b dials a, c dials b; the intruders w, r and o dial a or b.
. "$FERRY_SRCDIR/tests/net/lib.sh"

net_init
make_model "$T/model1" 4 5
make_model "$T/model2" 4 6
ROGUE=$(ctl keygen --out "$T/rogue.key" | tail -n 1)
ctl netkey --out "$T/other-network.key" >/dev/null

node_make a "models.want=*"
node_make b "models.want=*" "peers.peer=$(addr_of a)"
node_make c "models.want=*" "peers.peer=$(addr_of b)"
publish a llm 1 "$T/model1"
publish a llm 2 "$T/model2"
for n in a b c; do node_start "$n"; done
for n in b c; do wait_log "$n" "model llm version 2 complete" 60; done

say "w, with another network key, gets nothing"
NETKEY_FILE="$T/other-network.key" node_make w "models.want=*" \
	"peers.peer=$(addr_of a)" "peers.peer=$(addr_of b)"
node_start w
wait_log w "handshake failed" 20
wait_log a "handshake failed" 20
sleep 2
grep -q "new version\|peer [0-9a-f]* up\|complete (" "$T/w/log" && fail "w got through"
has_manifest w llm 2 && fail "w holds a manifest"
[ "$(ctl --store "$T/w/state" --json models | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["models"]))')" = 0 ] ||
	fail "w holds a model"

say "r pushes a manifest signed by a key only r trusts: b refuses it, c never sees it"
TRUST="$PUB $ROGUE" node_make r "models.want=*" "peers.peer=$(addr_of b)"
PUBLISHER_KEY="$T/rogue.key" publish r evil 1 "$T/model1"
node_start r
wait_log b "refused a manifest from peer $(short_id r): .*not trusted" 30
has_manifest b evil 1 && fail "b stored the untrusted manifest"

say "o pushes the older llm@1 to b, which holds llm@2: refused, not forwarded"
node_make o "models.want=*" "peers.peer=$(addr_of b)"
publish o llm 1 "$T/model1"
node_start o FERRY_TEST_GOSSIP_ALL=1
wait_log b "refused llm@1 from peer $(short_id o)" 30
# A few anti-entropy rounds (5 s) for anything that would leak to c.
sleep 6
has_manifest b llm 1 && fail "b stored the older version"
has_manifest c llm 1 && fail "c received the older version"
has_manifest c evil 1 && fail "c received the untrusted manifest"
grep -q "evil" "$T/c/log" && fail "c heard of the untrusted manifest"
has_manifest c llm 2 || fail "c lost llm@2"
for n in a b c w r o; do node_stop "$n"; done
