#!/bin/sh
# Hostile and failing media, on a real (loop-mounted ext4) file system: a
# flipped byte, a truncated pack, a forged manifest, symbolic links out of the
# bundle, sizes of a terabyte, files deleted and cut while the import runs.
# Each gives its clear error, exit status 1, and nothing bad in the store
# (`ferryctl verify` finds no corrupt chunk); a good bundle then completes it.
. "$(dirname "$0")/lib.sh"
need_root mkfs.ext4 mount umount python3 timeout

setup_stores
make_model "$T/v1" 32 3
publish demo 1 "$T/v1"
truncate -s 256M "$T/drive.img"
mkfs.ext4 -q -F "$T/drive.img"
M=$T/mnt
B=$M/ferry-bundle
mount_image "$T/drive.img" "$M"

fresh_bundle() {
	rm -rf "$B"
	ctl --store "$HQ" bundle create --out "$M" --pack-size 2M demo@1 >/dev/null
}

fresh_clinic() {
	rm -rf "$CLINIC/store" "$CLINIC/lock"
}

# Nothing corrupt was stored, whatever is still missing.
nothing_bad() {
	set +e
	ctl --store "$CLINIC" verify demo@1 >"$T/verify.out" 2>"$T/verify.err"
	set -e
	# No manifest stored at all is nothing bad either.
	grep -q "no model 'demo'\|model 'demo' has no version 1" "$T/verify.err" && return 0
	grep -q '^corrupt: *0$' "$T/verify.out" ||
		fail "corrupt chunks stored: $(cat "$T/verify.out" "$T/verify.err")"
}

# The import fails with these errors, then a good bundle completes the version.
sideload_fails() {
	expect_status 1 timeout 60 "$FERRYCTL" --store "$CLINIC" sideload "$M"
	for msg in "$@"; do
		err_has "$msg"
	done
	nothing_bad
	fresh_bundle
	ctl --store "$CLINIC" sideload "$M" >/dev/null
	ctl --store "$CLINIC" export demo@1 "$T/exported" >/dev/null
	same_tree "$T/v1" "$T/exported"
	rm -rf "$T/exported"
	fresh_clinic
}

# pick_raw: print "pack offset id" of the first raw-coded (random data) chunk.
pick_raw() {
	python3 - "$B" <<'PY'
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
}

flip() { # flip FILE OFFSET
	python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x40]))
' "$1" "$2"
}

# A flipped byte inside a chunk: that chunk is refused by pack, offset and id.
fresh_bundle
set -- $(pick_raw)
[ $# -eq 3 ] || fail "no raw chunk in the bundle"
flip "$B/$1.dat" $(($2 + 1000))
sideload_fails "ferryctl: sideload: ferry-bundle/$1.dat: chunk $3" \
	"at offset $2 (weights/extra.bin at offset" "refused: its bytes do not match its id" \
	"ferryctl: sideload: 1 problem in the bundle; everything good in it was imported"

# A truncated pack.
fresh_bundle
truncate -s 100000 "$B/pack-0002.dat"
sideload_fails "ferry-bundle/pack-0002.dat is 100000 bytes but the bundle record says" \
	"ferry-bundle/pack-0002.dat ends before chunk" "the pack is truncated"

# A manifest signed by a key the clinic does not trust, over the same chunks.
ctl keygen --out "$T/other.key" >"$T/other.out"
OTHER=$(tail -n 1 "$T/other.out")
ctl --store "$T/forger" publish --key "$T/other.key" demo 1 "$T/v1" >/dev/null
ctl --store "$T/forger" bundle create --out "$T/forged" demo@1 >/dev/null
fresh_bundle
cp "$T/forged/ferry-bundle/manifest-0001.fm" "$B/manifest-0001.fm"
expect_status 1 "$FERRYCTL" --store "$CLINIC" sideload "$M"
err_has "ferry-bundle/manifest-0001.fm: refused: manifest is signed by publisher $OTHER, which is not trusted"
ctl --store "$CLINIC" models >"$T/models.out"
grep -q '^demo' "$T/models.out" && fail "the forged manifest was stored"
grep -q '^chunks imported: *0$' "$T/out" || fail "chunks of a forged manifest were stored: $(cat "$T/out")"
# The trusted manifest with a byte of its body changed.
fresh_bundle
flip "$B/manifest-0001.fm" 60
sideload_fails "ferry-bundle/manifest-0001.fm: refused:"

# Symbolic links: a pack pointing out of the bundle, the record, the bundle itself.
fresh_bundle
cp "$B/pack-0002.dat" "$T/outside.dat"
rm "$B/pack-0002.dat"
ln -s "$T/outside.dat" "$B/pack-0002.dat"
sideload_fails "ferry-bundle/pack-0002.dat is a symbolic link; a bundle holds none, so it was not followed"
fresh_bundle
mv "$B/bundle.rec" "$T/outside.rec"
ln -s "$T/outside.rec" "$B/bundle.rec"
sideload_fails "ferryctl: sideload: ferry-bundle/bundle.rec is a symbolic link"
fresh_bundle
mv "$B" "$M/real-bundle"
ln -s real-bundle "$B"
expect_status 1 "$FERRYCTL" --store "$CLINIC" sideload "$M"
err_has "ferryctl: sideload: ferry-bundle is a symbolic link or not a directory; refused"
rm "$B"
mv "$M/real-bundle" "$B"
# A fifo where a pack belongs must not hang the import.
rm "$B/pack-0003.dat"
mkfifo "$B/pack-0003.dat"
sideload_fails "ferry-bundle/pack-0003.dat is a fifo, not a regular file; refused"

# A terabyte, sparse; an index that declares a billion entries.
fresh_bundle
truncate -s 1T "$B/pack-0002.dat"
flip "$B/pack-0003.idx" 15
sideload_fails "ferry-bundle/pack-0002.dat is 1.0 TiB, larger than such a file can be (2.0 GiB); refused without reading it" \
	"ferry-bundle/pack-0003.idx declares 1073741"

# Files deleted and cut while the import reads them.
fresh_bundle
"$FERRYCTL" --store "$CLINIC" sideload "$M" >"$T/out" 2>"$T/err" &
pid=$!
n=0
until ls -l "/proc/$pid/fd" 2>/dev/null | grep -q 'pack-000[2-9]\.dat'; do
	n=$((n + 1))
	[ "$n" -lt 20000 ] || break
done
kill -STOP "$pid" 2>/dev/null || fail "the import finished before it could be interrupted"
cur=$(ls -l "/proc/$pid/fd" | sed -n 's/.*pack-\([0-9]*\)\.dat$/\1/p' | head -n 1)
[ -n "$cur" ] || fail "the import has no pack open"
for f in "$B"/pack-*.dat; do
	num=$(basename "$f" .dat | sed 's/^pack-//')
	if [ "$num" -gt "$cur" ]; then rm "$f"; fi
done
truncate -s 0 "$B/pack-$cur.dat"
kill -CONT "$pid"
set +e
wait "$pid"
status=$?
set -e
[ "$status" -eq 1 ] || fail "an import whose files vanished exited $status: $(cat "$T/err")"
next=$((1$cur - 10000 + 1))
if [ "$next" -le "$(ls "$B" | grep -c '\.idx$')" ]; then
	err_has "ferry-bundle/pack-$(printf %04d "$next").dat is missing"
fi
nothing_bad
grep -q '^chunks imported: *[1-9]' "$T/out" || fail "what was verified before was not kept: $(cat "$T/out")"
fresh_bundle
ctl --store "$CLINIC" sideload "$M" >/dev/null
ctl --store "$CLINIC" export demo@1 "$T/out1" >/dev/null
same_tree "$T/v1" "$T/out1"
echo ok
