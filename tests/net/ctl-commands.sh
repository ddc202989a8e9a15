# ferryctl through the daemon's socket: every command's text and --json
# output, fetch --wait as plain lines and as JSON Lines, export, cancel,
# publish (signed by ferryctl, chunked by the daemon), and the one-sentence
# errors with their exit statuses.
. "$FERRY_SRCDIR/tests/net/lib.sh"

# json_check FILE PYTHON-EXPRESSION: FILE holds one JSON document `d` for which the
# expression is true.
json_check() {
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
if not eval(sys.argv[2]):
    sys.exit("not true of %s: %s" % (json.dumps(d), sys.argv[2]))
' "$1" "$2" || fail "JSON check failed on $1"
}

net_init
make_model "$T/m1" 4 1
make_model "$T/m2" 4 2
make_model "$T/m3" 2 3

# b wants nothing on its own, so fetches happen only when asked; its download
# rate makes a 4 MiB fetch last a few seconds, long enough for progress. b's
# connection to a (of another site: neither has one) runs cubic, so b adds
# seven lanes to it and every transfer below crosses eight connections.
node_make a "models.want=*"
node_make b "models.want=" "peers.peer=$(addr_of a)" "limits.download_rate=8mbit" \
	"peers.wan_congestion=cubic"
publish a llm 1 "$T/m1"
publish a llm 2 "$T/m2"
node_start a
node_start b
A="--socket $T/a/ferryd.sock"
B="--socket $T/b/ferryd.sock"

say "status, as text and JSON"
ctl $A status >"$T/out" || fail "status failed"
grep -q "^node id: *[0-9a-f]\{64\}$" "$T/out" || fail "status has no node id: $(cat "$T/out")"
for label in site ferryd uptime store chunks "free space" quota link "peers known" "rate in"; do
	grep -q "^$label:" "$T/out" || fail "status has no '$label:' line"
done
ctl $A --json status >"$T/out.json" || fail "status --json failed"
json_check "$T/out.json" 'len(d["node_id"]) == 64 and d["uptime_s"] >= 0 and d["store_chunks"] > 0'
json_check "$T/out.json" 'd["bytes_received"] == 0 and d["bytes_served"] == 0'

# wait_peers SECONDS PYTHON-EXPRESSION MESSAGE: poll b's `peers --json` into
# $T/peers.json until the expression on `peers` (its list) holds.
wait_peers() {
	local deadline=$(($(date +%s) + $1))

	until ctl $B --json peers >"$T/peers.json" &&
		python3 -c 'import json,sys; peers = json.load(open(sys.argv[1]))["peers"]; sys.exit(0 if eval(sys.argv[2]) else 1)' "$T/peers.json" "$2"; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "$3: $(cat "$T/peers.json")"
		sleep 0.3
	done
}

say "peers: b connects to a"
wait_peers 30 'any(p["state"] == "connected" for p in peers)' "b never shows a connected peer"
json_check "$T/peers.json" 'd["peers"][0]["address"] == "'"$(addr_of a)"'"'
# The connection's first ping reaches the scheduler within a second or two.
wait_peers 10 'peers[0].get("window_rtt_us", 0) > 0 and peers[0]["window_bytes"] > 0' \
	"b's scheduler never took a's RTT"
wait_peers 10 'peers[0].get("lanes") == 8 and peers[0].get("congestion") == "cubic"' \
	"b's seven lanes to a never came up"
ctl $B peers >"$T/out"
head -n 1 "$T/out" | grep -q "^ID *ADDRESS *SITE *STATE" || fail "peers has no table header: $(cat "$T/out")"
grep -q "$(addr_of a) .*connected" "$T/out" || fail "peers text lacks a: $(cat "$T/out")"

say "models, as text and JSON"
ctl $A --json models >"$T/out.json"
json_check "$T/out.json" 'sorted(r["version"] for r in d["models"] if r["name"] == "llm") == [1, 2]'
json_check "$T/out.json" 'all(r["present_pct"] == 100 for r in d["models"])'
ctl $A models >"$T/out"
grep -q "^llm *1 " "$T/out" || fail "models text lacks llm 1: $(cat "$T/out")"
# b may know the manifests from gossip, but wants none and holds no chunk.
ctl $B --json models >"$T/out.json"
json_check "$T/out.json" 'all(r["present_pct"] == 0 and not r["wanted"] for r in d["models"])'

say "fetch llm@1 --wait --json on b: JSON Lines until complete"
ctl $B --json fetch llm@1 --wait >"$T/progress.jsonl" || fail "fetch --wait failed"
python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) >= 3, "only %d progress lines" % len(lines)
assert all(l["name"] == "llm" and l["version"] == 1 for l in lines), lines
assert lines[-1]["complete"] and lines[-1]["have_bytes"] == lines[-1]["need_bytes"], lines[-1]
assert not lines[0]["complete"], lines[0]
have = [l["have_bytes"] for l in lines]
assert have == sorted(have), have
' "$T/progress.jsonl" || fail "bad JSON Lines: $(cat "$T/progress.jsonl")"

say "fetch llm@2 --wait on b, not a terminal: plain lines, the last one done"
ctl $B fetch llm@2 --wait >"$T/progress.txt" || fail "fetch --wait failed"
[ "$(wc -l <"$T/progress.txt")" -ge 2 ] || fail "one progress line only: $(cat "$T/progress.txt")"
tail -n 1 "$T/progress.txt" | grep -q "^llm@2  100.0%  .* done  [0-9]* sources\?$" ||
	fail "last progress line: $(tail -n 1 "$T/progress.txt")"
if grep -q "$(printf '\r')" "$T/progress.txt"; then fail "carriage returns in plain output"; fi

say "fetch of a complete version says so at once"
ctl $B fetch llm@1 >"$T/out"
grep -q "llm@1 is complete" "$T/out" || fail "fetch: $(cat "$T/out")"
ctl $B --json fetch llm@1 >"$T/out.json"
json_check "$T/out.json" 'd["complete"] and d["download_bytes"] == 0'

say "status counts the chunk bytes moved"
ctl $B --json status >"$T/out.json"
json_check "$T/out.json" 'd["bytes_received"] > 0'
ctl $A --json status >"$T/out.json"
json_check "$T/out.json" 'd["bytes_served"] > 0'
ctl $B status >"$T/out"
grep -q "^received: *[0-9.]* [KM]iB$" "$T/out" || fail "status text lacks received bytes: $(cat "$T/out")"

say "export through the daemon is byte-identical"
ctl $B export llm@1 "$T/out1" >/dev/null || fail "export failed"
(cd "$T/m1" && find . -type f) | while read -r f; do
	cmp -s "$T/m1/$f" "$T/out1/$f" || fail "$f differs after export"
done
ctl $B --json export llm@2 "$T/out2" --sha256 >"$T/out.json" || fail "export --json failed"
json_check "$T/out.json" 'd["name"] == "llm" and d["version"] == 2 and d["sha256_checked"]'
cmp -s "$T/m2/model.safetensors" "$T/out2/model.safetensors" || fail "export of llm@2 differs"

say "publish through a's daemon: ferryctl signs, the daemon chunks"
ctl $A --json publish --key "$T/publisher.key" llm 3 "$T/m3" --label small >"$T/out.json" ||
	fail "publish through the daemon failed"
json_check "$T/out.json" 'd["name"] == "llm" and d["version"] == 3 and d["label"] == "small"'
ctl $A --json models >"$T/out.json"
json_check "$T/out.json" 'any(r["version"] == 3 and r["present_pct"] == 100 for r in d["models"])'
grep -q "publish llm@3 requested by uid $(id -u)" "$T/a/log" || fail "a did not log the publish"

say "cancel"
ctl $B fetch llm@3 >/dev/null || fail "fetch llm@3 failed"
ctl $B cancel llm@3 >"$T/out" || fail "cancel failed"
grep -q "no longer fetching llm@3" "$T/out" || fail "cancel: $(cat "$T/out")"

say "errors are one sentence and a non-zero status"
status=0
ctl --socket "$T/nothing.sock" status >/dev/null 2>"$T/err" || status=$?
[ "$status" -eq 1 ] || fail "status without a daemon exited $status"
grep -q "^ferryctl: status: cannot connect to $T/nothing.sock: No such file or directory — is ferryd running?$" "$T/err" ||
	fail "no-daemon message: $(cat "$T/err")"
status=0
ctl $A export nosuchmodel "$T/out3" >/dev/null 2>"$T/err" || status=$?
[ "$status" -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] || fail "export of a missing model: $status $(cat "$T/err")"
status=0
ctl --store "$T/a/state" status >/dev/null 2>"$T/err" || status=$?
[ "$status" -eq 2 ] || fail "status --store exited $status"
grep -q "no --store form" "$T/err" || fail "status --store: $(cat "$T/err")"
ctl keygen --out "$T/stranger.key" >/dev/null
status=0
ctl $A publish --key "$T/stranger.key" llm 9 "$T/m3" >/dev/null 2>"$T/err" || status=$?
[ "$status" -eq 1 ] && [ "$(wc -l <"$T/err")" -eq 1 ] ||
	fail "publishing with an untrusted key: $status $(cat "$T/err")"
ctl $A --json models >"$T/out.json"
json_check "$T/out.json" 'not any(r["version"] == 9 for r in d["models"])'

node_stop b
node_stop a
[ ! -e "$T/a/ferryd.sock" ] || fail "a left its socket behind"
