# A member that comes up while another member of its site is fetching: c
# has asked the headquarters a for chunks when b starts. The site split now
# gives b some of the chunks c has in flight; c tells b what it asked for
# (CLAIM) as b comes up, so b leaves them to c, and a still serves one copy.
. "$FERRY_SRCDIR/tests/net/lib.sh"

net_init
make_model "$T/model" 8 12

node_make a "models.want=*" "node.site=hq"
node_make c "models.want=*" "node.site=clinic" "peers.peer=$(addr_of a)" \
	"limits.wan_download_rate=8mbit"
node_make b "models.want=*" "node.site=clinic" "peers.peer=$(addr_of a)" \
	"peers.peer=$(addr_of c)" "limits.wan_download_rate=8mbit"
publish a llm 1 "$T/model"
node_start a
node_start c
wait_log c "sent chunk" 30
node_start b
site_done
need=$(encoded_of b)
for n in a b c; do node_stop "$n"; done
served=$(served_of a)
say "model $need bytes; a served $served"
one_copy "$served" "$need" 65536
