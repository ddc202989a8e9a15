#!/bin/sh
# Publish time against b2sum of the same file, measured in the same run.
#
#   bench/publish.sh [SIZE]     SIZE in bytes or with K/M/G suffix; default 1G
#
# Generates a bf16 safetensors file (bench/gen_weights; random bytes if that
# is not built), reads it once so every run starts from the page cache, then
# times `b2sum FILE` and `ferryctl --store DIR publish` into a fresh store
# (chunking, hashing, encoding and fsync'd commits), each RUNS times (default
# 3), and prints the best of each and their ratio. The goal is a ratio of at
# most 2. Best-of-N because the machine is shared: a run that lost a core to
# another process says nothing about the code. FERRY_BUILDDIR chooses the
# build; TMPDIR where the file and the store go (default /var/tmp, a disk).
set -eu

size=$(numfmt --from=iec "${1:-1G}")
runs=${RUNS:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${FERRY_BUILDDIR:-$top/build}
ctl=$build/ferryctl
gen=$build/bench/gen_weights
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench-publish-XXXXXX")
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
cat "$file" >/dev/null
# Write the new file out now: its writeback would otherwise compete with the store's fsyncs.
sync

b2="" pub="" all=""
i=0
while [ "$i" -lt "$runs" ]; do
	t0=$(now); b2sum "$file" >/dev/null; t1=$(now)
	b2=$(min "$b2" "$(secs "$t0" "$t1")")
	rm -rf "$work/state"; sync
	t0=$(now)
	"$ctl" --store "$work/state" --json publish --key "$work/key" bench 1 "$work/src" \
		>"$work/out.json" 2>/dev/null
	t1=$(now)
	all="$all $(secs "$t0" "$t1")"
	pub=$(min "$pub" "$(secs "$t0" "$t1")")
	i=$((i + 1))
done
enc=$(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["encoded_pct"])' \
	"$work/out.json")

echo "file:    $(stat -c %s "$file") bytes, $kind"
echo "b2sum:   $b2 s (best of $runs)"
echo "publish: $pub s (best of $runs:$all; encoded to $enc% of raw; $(nproc) CPUs)"
awk -v p="$pub" -v b="$b2" 'BEGIN { printf "ratio:   %.2f (publish / b2sum; goal <= 2)\n", p / b }'
