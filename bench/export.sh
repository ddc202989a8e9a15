#!/bin/sh
# Export time against `cat FILE > OUT && sync` of the same file, measured in
# the same run.
#
#   bench/export.sh [SIZE]      SIZE in bytes or with K/M/G suffix; default 1G
#
# Publishes a bf16 safetensors file (bench/gen_weights; random bytes if that
# is not built) into a fresh store, then times `cat FILE > OUT && sync` (best
# of two) and `ferryctl --store DIR export` (decode, verify every chunk,
# write, fsync file and directory), and checks the export is identical. The
# goal is a ratio of at most 2. FERRY_BUILDDIR and TMPDIR as in publish.sh.
set -eu

size=$(numfmt --from=iec "${1:-1G}")
top=$(cd "$(dirname "$0")/.." && pwd)
build=${FERRY_BUILDDIR:-$top/build}
ctl=$build/ferryctl
gen=$build/bench/gen_weights
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench-export-XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b ? a : b) }'; }

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
# Write the new file out now: its writeback would otherwise compete with the store's fsyncs.
sync
"$ctl" --store "$work/state" publish --key "$work/key" bench 1 "$work/src" >/dev/null
sync

t0=$(now); cat "$file" >"$work/cat.out" && sync; t1=$(now)
ct=$(secs "$t0" "$t1")
rm "$work/cat.out"; sync
t0=$(now); cat "$file" >"$work/cat.out" && sync; t1=$(now)
ct=$(min "$ct" "$(secs "$t0" "$t1")")
rm "$work/cat.out"; sync

t0=$(now)
"$ctl" --store "$work/state" export bench "$work/out" >/dev/null
t1=$(now)
ex=$(secs "$t0" "$t1")
cmp "$file" "$work/out/model.safetensors"

echo "file:    $(stat -c %s "$file") bytes, $kind"
echo "cat+sync: $ct s"
echo "export:  $ex s ($(nproc) CPUs)"
awk -v e="$ex" -v c="$ct" 'BEGIN { printf "ratio:   %.2f (export / cat+sync; goal <= 2)\n", e / c }'
