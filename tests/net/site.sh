# A site behind one WAN link: b and c share site "clinic" and fetch from the
# headquarters node a (site "hq"). Each chunk crosses the WAN once: the
# members split the chunks (rendezvous hashing) and take the other half from
# each other over the LAN, so a serves about one copy of the model, not two.
. "$FERRY_SRCDIR/tests/net/lib.sh"

MIB=1048576
net_init
make_model "$T/model" 8 9

node_make a "models.want=*" "node.site=hq"
node_make b "models.want=*" "node.site=clinic" "peers.peer=$(addr_of a)" \
	"limits.wan_download_rate=16mbit"
node_make c "models.want=*" "node.site=clinic" "peers.peer=$(addr_of a)" \
	"peers.peer=$(addr_of b)" "limits.wan_download_rate=16mbit"
site_fetch
need=$(encoded_of b)
for n in a b c; do node_stop "$n"; done
served=$(served_of a)
say "model $need bytes; a served $served"
one_copy "$served" "$need" $MIB
