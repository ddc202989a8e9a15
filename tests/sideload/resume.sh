#!/bin/sh
# `bundle create` killed in the middle of writing (SIGKILL, as a pulled plug
# or a closed laptop would stop it) on a loop-mounted ext4 image: the same
# command run again finishes the bundle without rewriting the packs that
# were complete, and the bundle imports byte-identical.
. "$(dirname "$0")/lib.sh"
need_root mkfs.ext4 mount umount python3

setup_stores
make_model "$T/v1" 64 5
publish demo 1 "$T/v1"
truncate -s 256M "$T/drive.img"
mkfs.ext4 -q -F "$T/drive.img"
M=$T/mnt
B=$M/ferry-bundle
mount_image "$T/drive.img" "$M"

"$FERRYCTL" --store "$HQ" bundle create --out "$M" --pack-size 2M demo@1 >/dev/null 2>&1 &
pid=$!
n=0
until [ -e "$B/pack-0003.idx" ]; do
	n=$((n + 1))
	[ "$n" -lt 100000 ] || break
done
kill -KILL "$pid" 2>/dev/null || fail "bundle create finished before it could be killed"
wait "$pid" 2>/dev/null || true
[ ! -e "$B/bundle.rec" ] || fail "the killed run left a record: the bundle would look complete"
(cd "$B" && ls pack-*.idx) >"$T/complete"
[ -s "$T/complete" ] || fail "no pack was complete when the run was killed"
for idx in $(cat "$T/complete"); do
	stat -c '%n %i %Y %s' "$B/${idx%.idx}.dat"
done >"$T/before"

# Interrupted bundles are refused with the reason and the remedy.
expect_status 1 "$FERRYCTL" --store "$CLINIC" sideload "$M"
err_has "ferry-bundle/bundle.rec is missing: the bundle was not completely written (run the same \`ferryctl bundle create\` again to finish it)"

ctl --store "$HQ" --json bundle create --out "$M" --pack-size 2M demo@1 >"$T/resume.json"
kept=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["packs_kept"], d["written_bytes"] < d["bytes"])' "$T/resume.json")
[ "$kept" = "$(wc -l <"$T/complete") True" ] ||
	fail "the second run kept '$kept' packs, wanted all $(wc -l <"$T/complete"): $(cat "$T/resume.json")"
for idx in $(cat "$T/complete"); do
	stat -c '%n %i %Y %s' "$B/${idx%.idx}.dat"
done >"$T/after"
cmp "$T/before" "$T/after" || fail "complete packs were rewritten: $(diff "$T/before" "$T/after")"
[ -z "$(find "$B" -name '*.tmp')" ] || fail "temporary files left: $(ls "$B")"

umount "$M"
mount -o loop,ro,nosuid,nodev,noexec "$T/drive.img" "$M"
ctl --store "$CLINIC" sideload "$M" >/dev/null
ctl --store "$CLINIC" export demo@1 "$T/exported" >/dev/null
same_tree "$T/v1" "$T/exported"
echo ok
