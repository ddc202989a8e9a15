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
for n in b c; do wait_log "$n" "model llm version 1 complete" 90; done
for n in b c; do export_check "$n" llm@1 "$T/model"; done
need=$(encoded_of b)
for n in a b c; do node_stop "$n"; done
served=$(sed -n 's/.*received, \([0-9]*\) served since start.*/\1/p' "$T/a/log" | tail -n 1)
say "model $need bytes; a served $served"
[ -n "$served" ] && [ -n "$need" ] || fail "the counters are missing from the logs"
[ "$served" -le $((need + 65536)) ] ||
	fail "a served $served bytes for a model of $need: chunks crossed the WAN twice"
