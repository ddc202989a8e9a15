#!/bin/sh
# A full file system: publishing into a store on it and exporting onto it
# fail with a clear message and leave nothing half-written under a final name.
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" -eq 0 ] || { echo "skipped: mounting a small tmpfs needs root"; exit 77; }
mkdir "$T/small"
mount -t tmpfs -o size=20m tmpfs "$T/small" 2>/dev/null || { echo "skipped: cannot mount tmpfs"; exit 77; }
at_exit "umount '$T/small'"

ctl keygen --out "$T/pub.key" >/dev/null
mkdir "$T/src"
random_file "$T/src/big.bin" 31457280 1

# Publishing 30 MiB into a store on a 20 MiB file system.
set +e
ctl --store "$T/small/state" publish --key "$T/pub.key" big 1 "$T/src" >"$T/out" 2>"$T/err"
st=$?
set -e
[ "$st" -eq 1 ] || fail "publish onto a full file system exited $st: $(cat "$T/err")"
grep -q '^ferryctl: publish: .*\(space\|full\)' "$T/err" || fail "unclear message: $(cat "$T/err")"
# Nothing was accepted: the store lists no model.
ctl --store "$T/small/state" models >"$T/models.out"
! grep -q '^big ' "$T/models.out" || fail "a version was recorded although the publish failed"
rm -rf "$T/small/state"

# Exporting 30 MiB onto it.
ctl --store "$T/state" publish --key "$T/pub.key" big 1 "$T/src" >/dev/null
expect_fail 1 "ferryctl: export: big.bin: reserving 31457280 bytes: No space left on device" \
	--store "$T/state" export big "$T/small/out"
[ ! -e "$T/small/out/big.bin" ] || fail "a partial file was left under its name"
[ -z "$(find "$T/small/out" -name '*.ferry-tmp')" ] || fail "a temporary file was left behind"
echo "ok"
