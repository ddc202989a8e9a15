# A receiving node whose store cannot take more (here: min_free_space above
# the free space, as a full disk) keeps what arrived queued, says why in its
# log, and carries on once there is room again (here: a reload with a lower
# min_free_space), completing byte-identical without fetching anything twice.
. "$FERRY_SRCDIR/tests/net/lib.sh"

MIB=1048576
net_init
make_model "$T/model" 4 10
avail=$(df -B1 --output=avail "$T" | tail -n 1 | tr -d ' ')

node_make a "models.want=*"
node_make b "models.want=*" "peers.peer=$(addr_of a)" "node.min_free_space=$((avail + 1073741824))"
publish a llm 1 "$T/model"
node_start a
node_start b

say "b cannot store: it says so and does not complete"
wait_log b "<3>store: cannot store received chunks, retrying every .*min_free_space" 30
sleep 2
grep -q "model llm version 1 complete" "$T/b/log" && fail "b completed without storing"

say "room again (reload with min_free_space = 0): b stores what it holds and completes"
sed -i "s|^min_free_space = .*|min_free_space = 0|" "$T/b/ferryd.conf"
kill -HUP "$(cat "$T/b/pid")"
wait_log b "<5>store: store writes resumed" 30
wait_log b "model llm version 1 complete" 30
need=$(encoded_of b)
got=$(sed -n 's/.*model llm version 1 complete (\([0-9]*\) bytes.*/\1/p' "$T/b/log")
[ "$got" -le $((need + MIB)) ] || fail "b received $got bytes for a model of $need"
export_check b llm@1 "$T/model"
node_stop b
node_stop a
