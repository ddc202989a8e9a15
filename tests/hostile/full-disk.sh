# Full disk: the receiving node's state directory is a 48 MiB tmpfs and the
# model needs more. Mid-transfer the disk fills: the log and `ferryctl
# status` (store_error) must say so, the daemon must keep running with
# bounded memory and keep serving what it holds (a node that knows only it
# fetches chunks from it), and once the tmpfs grows the transfer must resume
# and complete byte-identical with nothing bad in the store. Root only.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

[ "$(id -u)" -eq 0 ] || hostile_skip "full-disk.sh mounts a tmpfs: run it as root"

# has_chunks NODE: the node's store holds at least one data chunk of llm.
has_chunks() {
	ctl --store "$T/$1/state" --trust "$PUB" --json models 2>/dev/null | python3 -c '
import json, sys
doc = json.load(sys.stdin)
rows = doc.get("models", doc) if isinstance(doc, dict) else doc
sys.exit(0 if any(r.get("name") == "llm" and float(r.get("present_pct", 0)) > 0 for r in rows) else 1)
'
}

net_init
make_model "$T/model" 96 11
node_make a "models.want=*"
node_make b "models.want=*" "node.min_free_space=0" "peers.peer=$(addr_of a)"
node_make c "models.want=*" "node.min_free_space=0" "peers.peer=$(addr_of b)"
publish a llm 1 "$T/model"
mkdir -p "$T/b/state"
mount -t tmpfs -o size=48m tmpfs "$T/b/state" 2>"$T/err" ||
	hostile_skip "cannot mount a tmpfs here: $(cat "$T/err")"
HOSTILE_MOUNTS="$T/b/state"

node_start a
node_start b
rss_watch b
say "b fetches about 70 MB of chunks into 48 MiB"
wait_log b "cannot store received chunks" 90
say "b's log: $(grep "cannot store received chunks" "$T/b/log" | head -n 1)"
sleep 2
alive b
se=$(status_field b store_error)
[ "$se" = - ] || [ -n "$se" ] || fail "ferryctl status shows no store_error while b's disk is full"
[ "$se" = - ] || say "ferryctl status: store_error = $se"
grep -q "model llm version 1 complete" "$T/b/log" && fail "b completed a model larger than its disk"

say "a goes away; c, which knows only b, fetches what b holds"
node_stop a
node_start c
deadline=$(($(date +%s) + 40))
until has_chunks c; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "c got no chunk from b (full disk) in 40 s"
	sleep 1
done
say "c holds chunks it fetched from b"
alive b

say "the tmpfs grows to 256 MiB and a comes back: b resumes"
mount -o remount,size=256m "$T/b/state"
node_start a
wait_log b "model llm version 1 complete" 120
grep -q "store writes resumed" "$T/b/log" || fail "b's log does not say its store writes resumed"
alive b
rss_check b
se=$(status_field b store_error)
[ "$se" = - ] || [ -z "$se" ] || fail "store_error still set after the disk grew: $se"
for n in a b c; do node_stop "$n"; done
export_check b llm@1 "$T/model"
store_verify b
