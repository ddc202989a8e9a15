# Four daemons in a chain (B dials A, C dials B, D dials C): a model
# published on A reaches every node on its own (gossip, peer exchange,
# fetching), and every node exports it byte-identical. Then a second
# version published on A while the others run replaces it everywhere, and
# the peers a node learned survive its restart.
. "$FERRY_SRCDIR/tests/net/lib.sh"

net_init
make_model "$T/model1" 16 1
make_model "$T/model2" 8 2

node_make a "models.want=*"
node_make b "models.want=*" "peers.peer=$(addr_of a)"
node_make c "models.want=*" "peers.peer=$(addr_of b)"
node_make d "models.want=*" "peers.peer=$(addr_of c)"

say "publish llm@1 on a (stopped), then start a, b, c, d"
publish a llm 1 "$T/model1"
for n in a b c d; do node_start "$n"; done

for n in b c d; do
	wait_log "$n" "model llm version 1 complete" 90
done
for n in a b c d; do export_check "$n" llm@1 "$T/model1"; done

say "peer exchange: d learned of a through the others"
wait_log d "peer $(short_id a) (.*) up" 30

say "publish llm@2 on a: stop a, publish, restart; the others follow"
node_stop a
publish a llm 2 "$T/model2"
node_start a
for n in b c d; do
	wait_log "$n" "model llm version 2 complete" 90
done
for n in b c d; do export_check "$n" llm@2 "$T/model2"; done

say "every node stops cleanly on SIGTERM"
for n in a b c d; do node_stop "$n"; done
grep -q "stopped" "$T/d/log" || fail "d did not log its stop"

say "known peers are kept: restarted alone with a, d (configured with c only) redials a"
node_start a
lines=$(wc -l <"$T/d/log")
node_start d
wait_log d "peer $(short_id a) (.*) up" 30 "$lines"
node_stop d
node_stop a
