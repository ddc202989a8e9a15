#!/bin/sh
# --json: every command prints one valid JSON document, strings escaped.
. "$(dirname "$0")/lib.sh"

S=$T/state
ctl --json keygen --out "$T/pub.key" >"$T/keygen.json"
json_ok "$T/keygen.json"
pk=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["public_key"])' "$T/keygen.json")
[ "${#pk}" -eq 44 ] || fail "keygen --json public_key: $pk"

make_tree "$T/src"
# A label with quotes, a backslash and non-ASCII text (labels are UTF-8 text).
label='say "hi" \ café ✓'
ctl --store "$S" publish --key "$T/pub.key" demo 7 "$T/src" --label "$label" --json >"$T/pub.json"
json_ok "$T/pub.json"
python3 - "$T/pub.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["name"] == "demo" and d["version"] == 7, d
assert d["label"] == 'say "hi" \\ caf\u00e9 \u2713', repr(d["label"])
assert d["file_count"] == 4 and len(d["files"]) == 4, d
assert d["size"] == 3145745 + 70001 + 513, d
assert d["new_bytes"] == d["size"] and d["dedup_bytes"] == 0, d
assert 0 < d["encoded_pct"] <= 101, d
assert [f["path"] for f in d["files"]] == ["a/b/weights.bin", "a/tokenizer.json", "config.json", "empty"], d
PY

ctl --json --store "$S" models >"$T/models.json"
json_ok "$T/models.json"
python3 - "$T/models.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
m = d["models"]
assert len(m) == 1, d
assert m[0]["name"] == "demo" and m[0]["version"] == 7, d
assert m[0]["present_pct"] == 100 and m[0]["active"] is False and m[0]["pinned"] is False, d
PY

# A directory name with a tab, a newline and a byte that is not UTF-8.
out=$(printf '%s/out\tnew\nline\377' "$T")
ctl --store "$S" export demo "$out" --json >"$T/export.json"
json_ok "$T/export.json"
python3 - "$T/export.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["dir"].endswith("/out\tnew\nline\ufffd"), repr(d["dir"])
assert d["name"] == "demo" and d["version"] == 7 and d["file_count"] == 4, d
PY
ctl --store "$S" verify demo@7 --json >"$T/verify.json"
json_ok "$T/verify.json"
python3 - "$T/verify.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["corrupt"] == 0 and d["missing"] == 0 and d["problems"] == [], d
assert d["chunks"] >= 4, d
PY
ctl --store "$S" gc --json >"$T/gc.json"
json_ok "$T/gc.json"
# A failed command prints no document at all, only its error.
if ctl --json --store "$T/no-such-store" models >"$T/failed.json" 2>/dev/null; then
	fail "models on a missing store succeeded"
fi
[ ! -s "$T/failed.json" ] || fail "a failed command printed: $(cat "$T/failed.json")"
echo "ok"
