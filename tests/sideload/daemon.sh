# Sideloading through a running ferryd (issue 5): ferryctl passes the
# descriptors, the daemon does the work. bundle create and have go through
# the daemon too, a delta bundle carries only what the clinic lacks, a
# flipped byte is refused by file, offset and chunk with exit status 1, and
# a drive whose files vanish mid-import gives a clear error and keeps what
# was verified; the same bundle whole then completes the model.
. "$FERRY_SRCDIR/tests/net/lib.sh"

net_init
make_model "$T/v1" 24 3
make_model "$T/v2" 24 3
# v2 changes the small files only: a delta bundle leaves the weights out.
printf '{"layers": 100}\n' >"$T/v2/config.json"

node_make hq
node_make clinic "models.want=*"
publish hq llm 1 "$T/v1"
publish hq llm 2 "$T/v2"
node_start hq
node_start clinic
HQS=$T/hq/ferryd.sock
CS=$T/clinic/ferryd.sock

# expect_status STATUS CMD...: run CMD (output in $T/out, $T/err), which must exit with STATUS.
expect_status() {
	want=$1
	shift
	set +e
	"$@" >"$T/out" 2>"$T/err"
	got=$?
	set -e
	[ "$got" -eq "$want" ] || fail "$*: exit status $got, wanted $want; stderr: $(cat "$T/err")"
}

err_has() {
	grep -qF -- "$1" "$T/err" || fail "stderr lacks '$1': $(cat "$T/err")"
}

bundle_v1() {
	rm -rf "$T/drive"
	ctl --socket "$HQS" bundle create --out "$T/drive" --pack-size 2M llm@1 >/dev/null 2>"$T/err" ||
		fail "bundle create through hq's daemon: $(cat "$T/err")"
}

say "help no longer calls sideload, bundle and have --store only"
ctl help >"$T/help" 2>&1 || true
grep -E '^  (sideload|bundle|have) .*--store only' "$T/help" && fail "still --store only"

say "a flipped byte in a pack: refused by file, offset and chunk; exit 1"
bundle_v1
set -- $(python3 - "$T/drive/ferry-bundle" <<'PY'
import glob, struct, sys
for idxname in sorted(glob.glob(sys.argv[1] + "/pack-*.idx")):
    idx = open(idxname, "rb").read()
    dat = open(idxname[:-3] + "dat", "rb")
    for i in range((len(idx) - 16) // 44):
        e = idx[16 + 44 * i: 60 + 44 * i]
        off, ln = struct.unpack("<QI", e[32:44])
        dat.seek(off)
        if dat.read(1) == b"\0" and ln > 65536:
            print(idxname[-13:-4], off, e[:6].hex())
            sys.exit(0)
PY
)
[ $# -eq 3 ] || fail "no raw chunk in the bundle"
python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x40]))
' "$T/drive/ferry-bundle/$1.dat" $(($2 + 1000))
expect_status 1 ctl --socket "$CS" sideload "$T/drive"
err_has "ferryctl: sideload: ferry-bundle/$1.dat: chunk $3"
err_has "at offset $2"
err_has "refused: its bytes do not match its id"
expect_status 1 ctl --socket "$CS" --json sideload "$T/drive"
python3 - "$T/out" "$1.dat" "$2" <<'PY' || fail "JSON Lines of the refused import: $(cat "$T/out")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
types = [l["type"] for l in lines]
assert types[-1] == "result" and "progress" in types, types
res = lines[-1]
assert res["ok"] is False and res["chunks_bad"] == 1, res
probs = [l for l in lines if l["type"] == "problem"]
assert any(p["file"] == "ferry-bundle/" + sys.argv[2] or p["file"] == sys.argv[2] for p in probs), probs
assert any(p["offset"] == int(sys.argv[3]) for p in probs), probs
PY
say "nothing bad stored: verify finds no corrupt chunk in the clinic's store"
set +e
ctl --store "$T/clinic/state" --trust "$PUB" verify llm@1 >"$T/verify.out" 2>"$T/verify.err"
set -e
grep -q '^corrupt: *0$' "$T/verify.out" ||
	fail "corrupt chunks stored: $(cat "$T/verify.out" "$T/verify.err")"
ctl --socket "$CS" --json models >"$T/models"
python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
rows = doc.get("models", doc) if isinstance(doc, dict) else doc
r = [r for r in rows if r["name"] == "llm" and int(r["version"]) == 1]
assert r and 90 < r[0]["present_pct"] < 100 and not r[0]["active"], r
' "$T/models" || fail "the good part was not kept, or llm@1 is active: $(cat "$T/models")"

say "the whole bundle completes llm@1, which the clinic activates"
bundle_v1
lines=$(wc -l <"$T/clinic/log")
ctl --socket "$CS" --json sideload "$T/drive" >"$T/out" 2>"$T/err" ||
	fail "sideload of a good bundle: $(cat "$T/err")"
python3 -c '
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
r = lines[-1]
assert r["type"] == "result" and r["ok"] is True and r["chunks_bad"] == 0, r
m = [l for l in lines if l["type"] == "manifest"]
assert m and m[0]["complete"] is True and m[0]["name"] == "llm", m
' "$T/out" || fail "JSON Lines of the good import: $(cat "$T/out")"
wait_log clinic "llm: version 1 is active" 30 "$lines"

say "have --out through the clinic's daemon, a delta bundle of llm@2 through hq's"
ctl --socket "$CS" have --out "$T/clinic.have" >"$T/out" 2>"$T/err" ||
	fail "have through the daemon: $(cat "$T/err")"
grep -q "^model versions: *1$" "$T/out" || fail "have: $(cat "$T/out")"
[ -f "$T/clinic.have" ] && [ ! -e "$T/clinic.have.tmp" ] || fail "the have-file is not in place"
rm -rf "$T/drive"
ctl --socket "$HQS" --json bundle create --out "$T/drive" --have "$T/clinic.have" llm@2 \
	>"$T/out" 2>"$T/err" || fail "delta bundle create through the daemon: $(cat "$T/err")"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["delta"] is True and d["skipped_chunks"] > 0, d
assert d["versions"][0]["name"] == "llm" and d["versions"][0]["version"] == 2, d
' "$T/out" || fail "delta bundle: $(cat "$T/out")"
lines=$(wc -l <"$T/clinic/log")
ctl --socket "$CS" sideload "$T/drive" >"$T/out" 2>"$T/err" ||
	fail "sideload of the delta bundle: $(cat "$T/err")"
grep -q "^delta bundle (made from a have-file): *yes" "$T/out" || fail "delta: $(cat "$T/out")"
wait_log clinic "llm: version 2 is active" 30 "$lines"
export_check clinic llm@2 "$T/v2"

say "a read-only user may not sideload (a write command)"
if id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
	chmod 0777 "$T/clinic" "$CS"
	chmod o+rx "$T" "$T/drive" "$T/drive/ferry-bundle"
	set +e
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$FERRYCTL" --socket "$CS" \
		sideload "$T/drive" >"$T/out" 2>"$T/err"
	st=$?
	set -e
	[ "$st" -ne 0 ] || fail "an unprivileged user could sideload"
	err_has "needs root or ferryd's own user"
fi

say "files vanish while the daemon imports: a clear error, what was verified stays"
node_stop clinic
rm -rf "$T/clinic/state"
node_start clinic
make_model "$T/v3" 48 7
node_stop hq
publish hq big 1 "$T/v3"
node_start hq
rm -rf "$T/drive"
ctl --socket "$HQS" bundle create --out "$T/drive" --pack-size 2M big@1 >/dev/null 2>&1
B=$T/drive/ferry-bundle
pid=$(cat "$T/clinic/pid")
ctl --socket "$CS" sideload "$T/drive" >"$T/out" 2>"$T/err" &
side=$!
n=0
until ls -l "/proc/$pid/fd" 2>/dev/null | grep -q 'pack-000[2-9]\.dat'; do
	n=$((n + 1))
	[ "$n" -lt 20000 ] || break
done
kill -STOP "$pid"
# While the import reads ahead, two packs may be open: the later one is where it is.
cur=$(ls -l "/proc/$pid/fd" | sed -n 's/.*pack-\([0-9]*\)\.dat$/\1/p' | sort | tail -n 1)
if [ -z "$cur" ]; then
	kill -CONT "$pid"
	fail "the import finished before it could be interrupted"
fi
for f in "$B"/pack-*.dat; do
	num=$(basename "$f" .dat | sed 's/^pack-//')
	if [ "$num" -gt "$cur" ]; then rm "$f"; fi
done
truncate -s 0 "$B/pack-$cur.dat"
kill -CONT "$pid"
set +e
wait "$side"
st=$?
set -e
[ "$st" -eq 1 ] || fail "an import whose files vanished exited $st: $(cat "$T/err")"
next=$((1$cur - 10000 + 1))
if [ "$next" -le "$(ls "$B" | grep -c '\.idx$')" ]; then
	# The emptied pack may be reported first (truncated), the removed one after it.
	grep -qE "ferry-bundle/pack-($(printf %04d "$next").dat is missing|$(printf %04d "$cur").dat (is 0 bytes|ends before))" "$T/err" ||
		fail "the error does not name the vanished pack: $(tr '\r' '\n' <"$T/err")"
fi
grep -q '^chunks imported: *[1-9]' "$T/out" ||
	fail "what was verified before was not kept: $(cat "$T/out")"
kill -0 "$pid" || fail "ferryd died"
rm -rf "$T/drive"
ctl --socket "$HQS" bundle create --out "$T/drive" --pack-size 2M big@1 >/dev/null 2>&1
ctl --socket "$CS" sideload "$T/drive" >"$T/out" 2>"$T/err" ||
	fail "the whole bundle after the vanished one: $(cat "$T/err")"
node_stop clinic
node_stop hq
export_check clinic big@1 "$T/v3"
echo ok
