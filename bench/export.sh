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

size=$(numfmt --from=iec "${1:-1G}")
runs=${RUNS:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${FERRY_BUILDDIR:-$top/build}
ctl=$build/ferryctl
gen=$build/bench/gen_weights
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench-export-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a ? b : a) }'; }

mkdir "$work/src"
file=$work/src/model.safetensors
if [ -x "$gen" ]; then
	kind="bf16 safetensors (gen_weights --seed 1)"
	"$gen" --dtype bf16 --size "$size" --seed 1 "$file" >/dev/null
else
	kind="random bytes (bench/gen_weights not built)"
	head -c "$size" /dev/urandom >"$file"
fi
"$ctl" keygen --out "$work/key" >/dev/null
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
