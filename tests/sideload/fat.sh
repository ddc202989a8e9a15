#!/bin/sh
# Bundles on the file systems USB drives come with: FAT32 (dosfstools'
# mkfs.vfat, mounted with fusefat, as this kernel has no vfat module) and
# exFAT (exfatprogs' mkfs.exfat, mounted with exfat-fuse). Each bundle is
# written there, imported from the file system mounted read-only and
# exported byte-identical. On exFAT the FUSE driver is then killed in the
# middle of an import, as a drive pulled out would stop answering.
. "$(dirname "$0")/lib.sh"
need_root mkfs.vfat fusefat mkfs.exfat mount.exfat-fuse losetup python3
[ -c /dev/fuse ] || skip "needs /dev/fuse"

setup_stores
make_model "$T/v1" 24 9
publish demo 1 "$T/v1"
M=$T/mnt
mkdir -p "$M"

# Names and sizes a FAT file system keeps as they are.
check_names() {
	for f in "$M"/ferry-bundle/*; do
		name=$(basename "$f")
		case "$name" in
		*[!a-z0-9.-]*) fail "$name is not lower-case ASCII" ;;
		esac
		[ "${#name}" -le 20 ] || fail "$name is long"
		[ "$(stat -c %s "$f")" -le $((2 << 20)) ] || fail "$name is over the pack size"
	done
}

roundtrip() { # roundtrip NAME: import from $M (mounted read-only) and export
	rm -rf "$CLINIC/store" "$CLINIC/lock" "$T/out"
	ctl --store "$CLINIC" sideload "$M" >"$T/$1.out"
	grep -q '^manifest-0001.fm  *demo  *1  *new  *yes$' "$T/$1.out" ||
		fail "$1: $(cat "$T/$1.out")"
	ctl --store "$CLINIC" export demo@1 "$T/exported" >/dev/null
	same_tree "$T/v1" "$T/exported"
	rm -rf "$T/exported"
}

# FAT32.
truncate -s 128M "$T/fat.img"
mkfs.vfat -F 32 -n FERRY "$T/fat.img" >/dev/null
fusefat -o rw+ "$T/fat.img" "$M" >/dev/null 2>&1
at_exit "umount '$M' 2>/dev/null"
ctl --store "$HQ" bundle create --out "$M" --pack-size 2M demo@1 >/dev/null
check_names
umount "$M"
fusefat -o ro "$T/fat.img" "$M" >/dev/null 2>&1
roundtrip fat32
umount "$M"

# exFAT, through a loop device (exfat-fuse wants a block device).
truncate -s 128M "$T/exfat.img"
mkfs.exfat -L FERRY "$T/exfat.img" >/dev/null
L=$(losetup -f --show "$T/exfat.img")
at_exit "losetup -d '$L'"
mount.exfat-fuse "$L" "$M" >/dev/null 2>&1
ctl --store "$HQ" bundle create --out "$M" --pack-size 2M demo@1 >/dev/null
check_names
umount "$M"
mount.exfat-fuse -o ro,nosuid,nodev,noexec "$L" "$M" >/dev/null 2>&1
roundtrip exfat

# The drive goes away in the middle of an import.
rm -rf "$CLINIC/store" "$CLINIC/lock"
"$FERRYCTL" --store "$CLINIC" sideload "$M" >"$T/out" 2>"$T/err" &
pid=$!
n=0
until ls -l "/proc/$pid/fd" 2>/dev/null | grep -q 'pack-000[2-9]\.dat'; do
	n=$((n + 1))
	[ "$n" -lt 20000 ] || break
done
kill -STOP "$pid" 2>/dev/null || fail "the import finished before the drive could go away"
fuse=$(ps -eo pid=,args= | awk -v l="$L" -v m="$M" '$2 ~ /exfat/ && $0 ~ l && $0 ~ m {print $1}')
[ -n "$fuse" ] || fail "cannot find the exfat-fuse process"
kill -KILL $fuse
kill -CONT "$pid"
set +e
wait "$pid"
status=$?
set -e
umount -l "$M" 2>/dev/null || true
[ "$status" -eq 1 ] || fail "the import exited $status when its drive went away: $(cat "$T/err")"
grep -q "ferryctl: sideload: the drive went away while reading ferry-bundle/pack-[0-9]*\.\(dat\|idx\) (Transport endpoint is not connected); what was verified before it is imported" "$T/err" ||
	fail "no clear error when the drive went away: $(cat "$T/err")"
set +e
ctl --store "$CLINIC" verify demo@1 >"$T/verify.out" 2>&1
set -e
grep -q '^corrupt: *0$' "$T/verify.out" || fail "after the drive went away: $(cat "$T/verify.out")"
grep -q '^missing: *[1-9]' "$T/verify.out" || fail "after the drive went away: $(cat "$T/verify.out")"
# What was verified before stays: the same bundle again adds only the rest.
mount.exfat-fuse -o ro "$L" "$M" >/dev/null 2>&1
ctl --store "$CLINIC" sideload "$M" >"$T/again.out"
grep -q '^already present: *[1-9]' "$T/again.out" || fail "nothing was kept: $(cat "$T/again.out")"
ctl --store "$CLINIC" export demo@1 "$T/exported" >/dev/null
same_tree "$T/v1" "$T/exported"
echo ok
