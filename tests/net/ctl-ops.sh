# The production commands through ferryd's socket, as an operator checks
# them: activate and rollback (the models/NAME/current link, the on_activate
# hook, what the output says was active before), a failed activation that
# leaves the old version active, pin/unpin in `models --json`, verify of the
# stored chunks and of the materialized files, reload (a good file applied, a
# bad one refused with FILE:LINE while ferryd keeps running), metrics, gc
# freeing the unpinned version's chunks, and the evicted version no longer
# offered to a peer. Write commands are refused to a non-owner (as root only).
. "$FERRY_SRCDIR/tests/net/lib.sh"

# json_check FILE PYTHON-EXPRESSION: FILE holds one JSON document `d` for which it is true.
json_check() {
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
if not eval(sys.argv[2]):
    sys.exit("not true of %s: %s" % (json.dumps(d), sys.argv[2]))
' "$1" "$2" || fail "JSON check failed on $1"
}

# row VERSION: the python expression for llm@VERSION's row of a models document.
row() {
	echo "[r for r in d['models'] if r['name'] == 'llm' and r['version'] == $1][0]"
}

# As root, b's socket belongs to group nogroup so that user nobody can run read commands.
GROUP="node.socket_group="
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null && getent group nogroup >/dev/null &&
	getent passwd nobody >/dev/null; then
	GROUP="node.socket_group=nogroup"
fi

net_init
for v in 1 2 3 4; do make_model "$T/m$v" 2 "$v"; done
cat >"$T/hook.sh" <<HOOK
echo "\$FERRY_MODEL \$FERRY_VERSION \$FERRY_PREVIOUS" >>"$T/hook.out"
HOOK

# b fetches only what it is asked to and activates only when told; keep_versions
# 1 leaves every version but the newest to gc.
node_make a "models.want=*"
node_make b "models.want=" "peers.peer=$(addr_of a)" "models.auto_activate=off" \
	"models.keep_versions=1" "models.on_activate=sh $T/hook.sh" "$GROUP"
for v in 1 2 3; do publish a llm "$v" "$T/m$v"; done
node_start a
node_start b
A="--socket $T/a/ferryd.sock"
B="--socket $T/b/ferryd.sock"
M=$T/b/state/models/llm

# current VERSION: models/llm/current is the relative link VERSION.
current() {
	[ "$(readlink "$M/current" 2>/dev/null)" = "$1" ] ||
		fail "models/llm/current points at '$(readlink "$M/current" 2>/dev/null)', not '$1'"
}

# hook_last LINE: on_activate's last line is LINE ("MODEL VERSION PREVIOUS").
hook_last() {
	[ "$(tail -n 1 "$T/hook.out" 2>/dev/null)" = "$1" ] ||
		fail "on_activate: last line '$(tail -n 1 "$T/hook.out" 2>/dev/null)', not '$1'"
}

say "b fetches llm@1..3; c, a peer of b, fetches llm@2 and llm@3 and hears b holds them"
for v in 1 2 3; do ctl $B fetch "llm@$v" --wait >/dev/null || fail "fetch llm@$v failed"; done
node_make c "models.want=" "peers.peer=$(addr_of b)"
node_start c
C="--socket $T/c/ferryd.sock"
for v in 2 3; do ctl $C fetch "llm@$v" --wait >/dev/null || fail "c: fetch llm@$v failed"; done
# Restarted, c tracks the versions it holds and logs which of them b offers.
lines=$(wc -l <"$T/c/log")
node_stop c
node_start c
wait_log c "peer $(short_id b) holds all of llm@3" 30 "$lines"

say "activate llm@1, then llm@2: current, the hook and what was before"
ctl $B activate llm@1 >"$T/out" || fail "activate llm@1 failed: $(cat "$T/out")"
grep -q "^llm: version 1 is active now (before: version none)$" "$T/out" ||
	fail "activate llm@1 said: $(cat "$T/out")"
current 1
hook_last "llm 1 0"
ctl $B --json activate llm@2 >"$T/out.json" || fail "activate llm@2 failed"
json_check "$T/out.json" 'd["active"] == 2 and d["previous"] == 1 and d["switched"] and d["hook_ran"]'
current 2
hook_last "llm 2 1"
cmp -s "$T/m2/model.safetensors" "$M/current/model.safetensors" ||
	fail "models/llm/current/model.safetensors is not llm@2's"

say "rollback goes back to llm@1 and says it was at 2"
ctl $B rollback llm >"$T/out" || fail "rollback failed: $(cat "$T/out")"
grep -q "^llm: version 1 is active now (before: version 2)$" "$T/out" ||
	fail "rollback said: $(cat "$T/out")"
current 1
hook_last "llm 1 2"

say "failed activations (missing, incomplete, corrupt) say why in one sentence; llm@1 stays"
status=0
ctl $B activate llm@9 >"$T/out" 2>"$T/err" || status=$?
[ "$status" -eq 1 ] || fail "activate llm@9 exited $status"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "more than one line: $(cat "$T/err")"
grep -q "^ferryctl: activate: cannot activate llm@9: .*; llm stays at version 1$" "$T/err" ||
	fail "activate llm@9 said: $(cat "$T/err")"
current 1
# llm@4: a pushes its manifest to b, which wants none of its chunks.
ctl $A publish --key "$T/publisher.key" llm 4 "$T/m4" >/dev/null || fail "publish llm@4 failed"
deadline=$(($(date +%s) + 30))
until ctl $B --json models >"$T/models.json" &&
	python3 -c 'import json,sys; sys.exit(0 if any(r["version"] == 4 for r in json.load(open(sys.argv[1]))["models"]) else 1)' "$T/models.json"; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "b never learned of llm@4"
	sleep 0.3
done
status=0
ctl $B activate llm@4 2>"$T/err" >/dev/null || status=$?
[ "$status" -eq 1 ] || fail "activating the incomplete llm@4 exited $status"
grep -q "^ferryctl: activate: cannot activate llm@4: not complete: .*; llm stays at version 1$" "$T/err" ||
	fail "activate llm@4 said: $(cat "$T/err")"
current 1
hook_last "llm 1 2"
# A corrupt chunk of llm@3 (its tokenizer is random bytes, stored raw): flip a byte in b's
# store file; the running daemon reads it through its map.
python3 - "$T/b/state/store/data.mdb" "$T/m3/sub/tokenizer.json" <<'PY'
import sys
src = open(sys.argv[2], "rb").read()
probe = src[200000:200064]
with open(sys.argv[1], "r+b") as f:
    data = f.read()
    i = data.find(probe)
    assert i >= 0, "the chunk's bytes are not in the store file"
    while i >= 0:
        f.seek(i)
        f.write(bytes([data[i] ^ 0xff]))
        i = data.find(probe, i + 1)
PY
status=0
ctl $B activate llm@3 >/dev/null 2>"$T/err" || status=$?
[ "$status" -eq 1 ] || fail "activating llm@3 with a corrupt chunk exited $status"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "more than one line: $(cat "$T/err")"
grep -q "^ferryctl: activate: cannot activate llm@3: .*corrupt.*; llm stays at version 1$" "$T/err" ||
	fail "activate llm@3 said: $(cat "$T/err")"
current 1
[ ! -e "$M/3" ] || fail "models/llm/3 exists after a failed activation"
status=0
ctl $B activate llm >/dev/null 2>"$T/err" || status=$?
[ "$status" -eq 2 ] || fail "activate without a version exited $status, not 2 (usage)"

say "verify: chunks and the materialized files of llm@2"
ctl $B verify llm@2 >"$T/out" || fail "verify llm@2 failed: $(cat "$T/out")"
grep -q "^files match: *yes$" "$T/out" || fail "verify llm@2: $(cat "$T/out")"
chmod u+w "$M/2/model.safetensors"
printf 'x' | dd of="$M/2/model.safetensors" bs=1 seek=1000 conv=notrunc 2>/dev/null
status=0
ctl $B --json verify llm@2 >"$T/out.json" 2>"$T/err" || status=$?
[ "$status" -eq 1 ] || fail "verify of a damaged copy exited $status"
json_check "$T/out.json" 'd["corrupt"] == 0 and d["materialized"] and not d["files_ok"]'
json_check "$T/out.json" '"model.safetensors" in d["problems"][0]["path"]'
grep -q "SHA-256 does not match" "$T/err" || fail "verify said: $(cat "$T/err")"

say "pin and unpin show in models --json"
ctl $B pin llm@3 >"$T/out" || fail "pin failed"
grep -q "^pinned llm@3$" "$T/out" || fail "pin said: $(cat "$T/out")"
ctl $B --json models >"$T/models.json"
json_check "$T/models.json" "$(row 3)['pinned'] and not $(row 2)['pinned'] and $(row 1)['active'] and not $(row 3)['active']"

say "reload: a bad line is refused with FILE:LINE, ferryd keeps the old config"
cp "$T/b/ferryd.conf" "$T/b/good.conf"
echo "bogus_key = 1" >>"$T/b/ferryd.conf"
line=$(wc -l <"$T/b/ferryd.conf")
status=0
ctl $B reload 2>"$T/err" >/dev/null || status=$?
[ "$status" -eq 1 ] || fail "reload of a bad config exited $status"
grep -q "^ferryctl: reload: $T/b/ferryd.conf:$line: unknown key 'bogus_key'" "$T/err" ||
	fail "reload said: $(cat "$T/err")"
grep -q "ferryd keeps running with its previous configuration" "$T/err" ||
	fail "reload did not say the old config stays: $(cat "$T/err")"
kill -0 "$(cat "$T/b/pid")" || fail "b died after a bad reload"
ctl $B --json status >"$T/status.json" || fail "status after a bad reload failed"
json_check "$T/status.json" 'd["cache_quota"] == 0'

say "reload: a good file applies cache_quota at once"
cp "$T/b/good.conf" "$T/b/ferryd.conf"
sed -i 's/^\[models\]$/[models]\ncache_quota = 1K/' "$T/b/ferryd.conf"
ctl $B reload >/dev/null || fail "reload of a good config failed"
ctl $B --json status >"$T/status.json"
json_check "$T/status.json" 'd["cache_quota"] == 1024'

say "metrics: Prometheus text, every name ferry_"
ctl $B metrics >"$T/metrics.txt" || fail "metrics failed"
python3 - "$T/metrics.txt" <<'PY' || fail "metrics: $(head -n 20 "$T/metrics.txt")"
import re, sys
names = set()
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+-]+|NaN|[+-]Inf)$')
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
        continue
    m = sample.match(line)
    assert m, "not a sample line: %r" % line
    assert m.group(1).startswith("ferry_"), "not prefixed: %r" % line
    names.add(m.group(1))
for want in ("ferry_store_bytes", "ferry_chunks_verified_total", "ferry_model_active_version"):
    assert want in names, "no %s in %s" % (want, sorted(names))
PY
grep -q '^ferry_model_active_version{name="llm"} 1$' "$T/metrics.txt" ||
	fail "metrics do not say llm is at version 1"
grep -q '^ferry_cache_quota_bytes 1024$' "$T/metrics.txt" || fail "metrics: no quota of 1024"

say "gc: a pinned llm@3 stays; unpinned, it is evicted and its chunks freed"
ctl $B --json gc >"$T/gc.json" || fail "gc failed"
json_check "$T/gc.json" 'd["evicted"] == [] and d["short_by"] > 0'
ctl $B --json status >"$T/status.json"
before=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["store_bytes"])' "$T/status.json")
ctl $B unpin llm@3 >"$T/out" || fail "unpin failed"
grep -q "^unpinned llm@3$" "$T/out" || fail "unpin said: $(cat "$T/out")"
ctl $B gc >"$T/out" || fail "gc failed"
grep -q "^llm *3 " "$T/out" || fail "gc does not list llm@3 as evicted: $(cat "$T/out")"
ctl $B --json status >"$T/status.json"
after=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["store_bytes"])' "$T/status.json")
[ "$after" -lt "$before" ] || fail "gc freed nothing: store bytes $before, then $after"
ctl $B --json models >"$T/models.json"
json_check "$T/models.json" "not any(r['version'] == 3 for r in d['models']) and $(row 1)['active']"
current 1

say "the evicted llm@3 is no longer offered: c is told, and not offered it when it reconnects"
wait_log c "peer $(short_id b) no longer holds llm@3" 30
lines=$(wc -l <"$T/c/log")
node_stop c
node_start c
wait_log c "peer $(short_id b) holds all of llm@2" 30 "$lines"
if tail -n +"$((lines + 1))" "$T/c/log" | grep -q "peer $(short_id b) holds all of llm@3"; then
	fail "b still offers the evicted llm@3 to a new connection"
fi

say "write commands are refused to a user who is not root or ferryd's"
if [ "$GROUP" = "node.socket_group=nogroup" ]; then
	chmod 755 "$T" "$T/b"
	for cmd in "activate llm@2" "rollback llm" "pin llm@1" "unpin llm" "gc" "reload"; do
		status=0
		# shellcheck disable=SC2086
		setpriv --reuid=nobody --regid=nogroup --clear-groups "$FERRYCTL" $B $cmd \
			>/dev/null 2>"$T/err" || status=$?
		[ "$status" -eq 1 ] || fail "$cmd as nobody exited $status"
		grep -q "needs root or ferryd's own user" "$T/err" || fail "$cmd as nobody: $(cat "$T/err")"
	done
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$FERRYCTL" $B metrics >/dev/null ||
		fail "metrics (a read command) refused to a group member"
	current 1
else
	say "skipped: needs root, setpriv, user nobody and group nogroup"
fi

for n in a b c; do node_stop "$n"; done

say "with --store on the stopped b: activate repairs llm@2's damaged copy, no hook runs"
hooks=$(wc -l <"$T/hook.out")
ctl --store "$T/b/state" --trust "$PUB" activate llm@2 >"$T/out" || fail "activate --store failed: $(cat "$T/out")"
grep -q "^llm: version 2 is active now (before: version 1)$" "$T/out" ||
	fail "activate --store said: $(cat "$T/out")"
current 2
cmp -s "$T/m2/model.safetensors" "$M/2/model.safetensors" || fail "the damaged copy of llm@2 stayed"
[ "$(wc -l <"$T/hook.out")" -eq "$hooks" ] || fail "on_activate ran for a --store activation"
ctl --store "$T/b/state" --trust "$PUB" rollback llm >"$T/out" || fail "rollback --store failed"
current 1
ctl --store "$T/b/state" pin llm >"$T/out" || fail "pin --store failed"
grep -q "^pinned llm (its active version)$" "$T/out" || fail "pin --store said: $(cat "$T/out")"
ctl --store "$T/b/state" --trust "$PUB" --json models >"$T/models.json"
json_check "$T/models.json" "$(row 1)['pinned'] and $(row 1)['active']"
