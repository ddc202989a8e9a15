# A node that sideloads a bundle seeds its site (issue 5): hq publishes and
# writes a bundle through its daemon; clinic node a imports it through its
# running daemon (`ferryctl sideload`, no --store); node b, on the same site
# with a as its only peer, fetches the model from a over loopback and exports
# it byte-identical. a activates the version itself, as a fetched one.
. "$FERRY_SRCDIR/tests/net/lib.sh"

net_init
make_model "$T/model" 8 5

node_make hq "node.site=hq"
node_make a "models.want=*" "node.site=clinic"
node_make b "models.want=*" "node.site=clinic" "peers.peer=$(addr_of a)"
publish hq llm 1 "$T/model"
node_start hq
say "bundle create through hq's daemon"
ctl --socket "$T/hq/ferryd.sock" bundle create --out "$T/drive" llm@1 >"$T/out" 2>"$T/err" ||
	fail "bundle create through the daemon: $(cat "$T/err")"
grep -q "^bundle: *$T/drive/ferry-bundle" "$T/out" || fail "bundle create printed: $(cat "$T/out")"
node_stop hq

node_start a
node_start b
wait_log b "peer $(short_id a) (.*) up" 20
has_manifest b llm 1 && fail "b holds llm@1 before the sideload"

say "a sideloads through its daemon"
ctl --socket "$T/a/ferryd.sock" sideload "$T/drive" >"$T/out" 2>"$T/err" ||
	fail "sideload through the daemon: $(cat "$T/err")"
grep -q "llm .* new .* yes" "$T/out" || fail "the report has no complete new llm@1: $(cat "$T/out")"
grep -q "^chunks imported: *[1-9]" "$T/out" || fail "nothing imported: $(cat "$T/out")"

say "b fetches llm@1 from a, its only source"
wait_log b "model llm version 1 complete" 60
wait_log a "llm: version 1 is active" 30
ctl --socket "$T/a/ferryd.sock" --json models >"$T/models.json"
python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
rows = doc.get("models", doc) if isinstance(doc, dict) else doc
r = [r for r in rows if r["name"] == "llm" and int(r["version"]) == 1]
assert r and r[0]["present_pct"] == 100 and r[0]["active"], r
' "$T/models.json" || fail "a does not show llm@1 complete and active: $(cat "$T/models.json")"
node_stop b
node_stop a
export_check b llm@1 "$T/model"
export_check a llm@1 "$T/model"
echo ok
