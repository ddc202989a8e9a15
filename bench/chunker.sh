#!/bin/sh
# Chunker speed as a ratio to b2sum, both on the same 256 MiB of random data
# in one run (figures from different runs or machines do not compare).
# Usage: bench/chunker.sh [BUILDDIR]    (default: $FERRY_BUILDDIR, else build/)
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${FERRY_BUILDDIR:-$top/build}}
bin=$build/bench/bench_chunker
[ -x "$bin" ] || {
	echo "chunker.sh: $bin is not built: run make in $build" >&2
	exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
data=$tmp/random.bin
head -c 268435456 /dev/urandom >"$data"

# b2sum reads the file from the page cache (it was just written); best of 3.
b2=0
for _ in 1 2 3; do
	t0=$(date +%s%N)
	b2sum "$data" >/dev/null
	t1=$(date +%s%N)
	b2=$(awk -v b=268435456 -v ns=$((t1 - t0)) -v best="$b2" \
		'BEGIN { g = b / ns; print (g > best ? g : best) }')
done

out=$("$bin" "$data")
echo "$out"
chunk=$(echo "$out" | awk '/^chunk_gbps/ { print $2 }')
both=$(echo "$out" | awk '/^chunk_and_id_gbps/ { print $2 }')
awk -v b2="$b2" -v c="$chunk" -v ci="$both" 'BEGIN {
	printf "b2sum_gbps %.3f\n", b2
	printf "chunker / b2sum = %.2f\n", c / b2
	printf "chunker+ids / b2sum = %.2f\n", ci / b2
}'
