#!/bin/sh
# Export time against `cat FILE > OUT && sync` of the same file, measured in
# the same run.
#
#   bench/export.sh [SIZE]      SIZE in bytes or with K/M/G suffix; default 1G
#
# Publishes a bf16 safetensors file (bench/gen_weights; random bytes if that
# is not built) into a fresh store, then times `cat FILE > OUT && sync` and
# `ferryctl --store DIR export` (decode, verify every chunk, write, fsync file
# and directory), each RUNS times (default 3; best of each, as in
# publish.sh), and checks the export is identical. The goal is a ratio of at
# most 2. FERRY_BUILDDIR and TMPDIR as in publish.sh.
set -eu

. "$(dirname "$0")/lib.sh"
bench_init export "${1:-1G}"
"$ctl" --store "$work/state" publish --key "$work/key" bench 1 "$work/src" >/dev/null 2>&1
sync

ct="" ex="" all=""
i=0
while [ "$i" -lt "$runs" ]; do
	rm -f "$work/cat.out"; sync
	t0=$(now); cat "$file" >"$work/cat.out" && sync; t1=$(now)
	ct=$(min "$ct" "$(secs "$t0" "$t1")")
	rm -f "$work/cat.out"; rm -rf "$work/out"; sync
	t0=$(now)
	"$ctl" --store "$work/state" export bench "$work/out" >/dev/null
	t1=$(now)
	all="$all $(secs "$t0" "$t1")"
	ex=$(min "$ex" "$(secs "$t0" "$t1")")
	i=$((i + 1))
done
cmp "$file" "$work/out/model.safetensors"

echo "file:     $(stat -c %s "$file") bytes, $kind"
echo "cat+sync: $ct s (best of $runs)"
echo "export:   $ex s (best of $runs:$all; $(nproc) CPUs)"
awk -v e="$ex" -v c="$ct" 'BEGIN { printf "ratio:    %.2f (export / cat+sync; goal <= 2)\n", e / c }'
