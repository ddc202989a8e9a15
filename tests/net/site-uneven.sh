# A site whose members reach the headquarters at very different rates: b at
# 8 Mbit/s, c at 1 Mbit/s (their WAN download limits). Each asks a for its
# share first and tells the other what it asked for (CLAIM); once b's share
# has arrived it takes over part of what c has left of its own, and again
# each time that has arrived. So b brings in most of the model, c does not
# hold the site up with the rest of its half, and each chunk still crosses
# the WAN once.
. "$FERRY_SRCDIR/tests/net/lib.sh"

MIB=1048576
net_init
make_model "$T/model" 8 11

node_make a "models.want=*" "node.site=hq"
node_make b "models.want=*" "node.site=clinic" "peers.peer=$(addr_of a)" \
	"limits.wan_download_rate=8mbit"
node_make c "models.want=*" "node.site=clinic" "peers.peer=$(addr_of a)" \
	"peers.peer=$(addr_of b)" "limits.wan_download_rate=1mbit"
site_fetch
need=$(encoded_of b)
wb=$(status_of b rx_wan)
wc=$(status_of c rx_wan)
for n in a b c; do node_stop "$n"; done
served=$(served_of a)
say "model $need bytes; over the WAN b received $wb, c $wc; a served $served"
[ -n "$wb" ] && [ -n "$wc" ] || fail "the WAN counters are missing from the status"
one_copy "$served" "$need" $MIB
[ $((wb * 10)) -ge $((need * 7)) ] ||
	fail "b, eight times faster, received only $wb of $need bytes over the WAN: it did not take over c's share"
