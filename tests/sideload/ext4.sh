#!/bin/sh
# A bundle written to a loop-mounted ext4 image, imported from it mounted
# read-only (nosuid,nodev,noexec, as ferry-sideload@.service mounts a
# drive), exported byte-identical; then a delta bundle made from the
# clinic's have-file carries only the chunks the clinic lacks; then an older
# signed version is stored without moving anything active.
. "$(dirname "$0")/lib.sh"
need_root mkfs.ext4 mount umount python3

setup_stores
make_model "$T/v1" 24 1
publish demo 1 "$T/v1"

truncate -s 256M "$T/drive.img"
mkfs.ext4 -q -F "$T/drive.img"
M=$T/mnt
mount_image "$T/drive.img" "$M"
ctl --store "$HQ" bundle create --out "$M" --pack-size 4M demo@1 >"$T/create.out"
grep -q '^packs: *[6-9]$' "$T/create.out" || fail "24 MiB in 4 MiB packs: $(cat "$T/create.out")"
[ -f "$M/ferry-bundle/bundle.rec" ] || fail "no bundle record"
umount "$M"
mount -o loop,ro,nosuid,nodev,noexec "$T/drive.img" "$M"

ctl --store "$CLINIC" sideload "$M" >"$T/side.out"
grep -q '^manifest-0001.fm  *demo  *1  *new  *yes$' "$T/side.out" ||
	fail "sideload report: $(cat "$T/side.out")"
ctl --store "$CLINIC" export demo@1 "$T/out1" >/dev/null
same_tree "$T/v1" "$T/out1"
[ -f "$T/out1/empty" ] || fail "the empty file was not exported"

# The path of ferry-bundle/ itself works too, and a second import adds nothing.
ctl --store "$CLINIC" sideload "$M/ferry-bundle" >"$T/side2.out"
grep -q '^chunks imported: *0$' "$T/side2.out" || fail "second import: $(cat "$T/side2.out")"
grep -q 'already held' "$T/side2.out" || fail "second import: $(cat "$T/side2.out")"
umount "$M"

# Delta: version 2 changes one file; the clinic's have-file leaves out the rest.
cp -r "$T/v1" "$T/v2"
random_file "$T/v2/weights/extra.bin" 3 7
publish demo 2 "$T/v2"
ctl --store "$CLINIC" have --out "$T/clinic.have" >/dev/null
mount_image "$T/drive.img" "$M"
ctl --store "$HQ" --json bundle create --out "$M" --have "$T/clinic.have" demo@2 >"$T/delta.json"
python3 - "$T/delta.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["delta"] is True, d
assert d["skipped_chunks"] > 0, d
assert d["bytes"] < 4 << 20, d            # about the 3 MiB that changed
assert d["model_bytes"] > 14 << 20, d     # 12 MiB of weights kept, 3 MiB new
assert d["packs"] == 1, d
PY
[ ! -e "$M/ferry-bundle/pack-0002.dat" ] || fail "the first bundle's packs were left behind"
umount "$M"
mount -o loop,ro,nosuid,nodev,noexec "$T/drive.img" "$M"
ctl --store "$CLINIC" --json sideload "$M" >"$T/delta-side.jsonl"
python3 - "$T/delta-side.jsonl" "$T/delta.json" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
made = json.load(open(sys.argv[2]))
assert all("type" in l for l in lines), lines
res = lines[-1]
assert res["type"] == "result" and res["ok"] is True and res["delta"] is True, res
# Every chunk the delta bundle carries was one the clinic lacked.
assert res["chunks_imported"] == made["chunks"], (res, made)
assert res["chunks_unreferenced"] == 0 and res["chunks_missing"] == 0, res
man = [l for l in lines if l["type"] == "manifest"]
assert len(man) == 1 and man[0]["version"] == 2 and man[0]["complete"] is True, man
assert any(l["type"] == "progress" for l in lines), lines
PY
ctl --store "$CLINIC" export demo@2 "$T/out2" >/dev/null
same_tree "$T/v2" "$T/out2"
umount "$M"

# Two versions in one bundle; usage errors exit 2 with the usage line.
ctl --store "$HQ" --json bundle create --out "$T/both" demo@1 demo@2 >"$T/both.json"
grep -q '"manifests": 2' "$T/both.json" || fail "two versions: $(cat "$T/both.json")"
expect_status 2 "$FERRYCTL" --store "$HQ" bundle make --out "$T/x" demo
err_has "ferryctl: bundle: unknown bundle command 'make' (there is: create)"
err_has "usage: ferryctl [--socket PATH | --store DIR] [--json] bundle create --out DIR"
expect_status 2 "$FERRYCTL" --store "$HQ" bundle create demo
err_has "ferryctl: bundle: missing --out DIR"

# An older signed version: stored because it was carried in, nothing else changes.
mount_image "$T/drive.img" "$M"
ctl --store "$HQ" bundle create --out "$M" demo@1 >/dev/null
umount "$M"
mount -o loop,ro,nosuid,nodev,noexec "$T/drive.img" "$M"
rm -rf "$CLINIC/store" "$CLINIC/lock"
ctl --store "$CLINIC" sideload "$M" >/dev/null # v1 ...
umount "$M"
mount_image "$T/drive.img" "$M"
ctl --store "$HQ" bundle create --out "$M" demo@2 >/dev/null
ctl --store "$CLINIC" sideload "$M" >/dev/null # ... then v2 raises the mark
ctl --store "$HQ" bundle create --out "$M" demo@1 >/dev/null
ctl --store "$CLINIC" sideload "$M" >"$T/older.out"
grep -q '^manifest-0001.fm  *demo  *1  *already held' "$T/older.out" ||
	fail "older: $(cat "$T/older.out")"
# A clinic at version 2 that never had version 1 stores it as older.
rm -rf "$CLINIC/store" "$CLINIC/lock"
ctl --store "$HQ" bundle create --out "$M" demo@2 >/dev/null
ctl --store "$CLINIC" sideload "$M" >/dev/null
ctl --store "$HQ" bundle create --out "$M" demo@1 >/dev/null
ctl --store "$CLINIC" sideload "$M" >"$T/older.out"
grep -q '^manifest-0001.fm  *demo  *1  *older (stored, not activated)  *yes$' "$T/older.out" ||
	fail "older: $(cat "$T/older.out")"
echo ok
