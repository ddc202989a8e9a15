#!/bin/sh
# Chunk codec benchmark: for a synthetic bf16 and fp32 safetensors file, a real
# model file (dlib's face landmark predictor, Debian package libdlib-data) and
# random bytes, print the encoded size of each codec as a percentage of raw,
# encode and decode throughput, and encode time as a multiple of `b2sum` on the
# same file in the same run (decode time as a multiple of `cat`).
#
#   bench/codec.sh [BUILDDIR [WORKDIR]]
#
# BUILDDIR defaults to $FERRY_BUILDDIR or ./build; WORKDIR (default
# /tmp/ferry-codec-bench) keeps the generated files between runs. Timings are
# the fastest of 3 passes, in memory, one thread, 256 KiB chunks.
set -eu

build=${1:-${FERRY_BUILDDIR:-build}}
work=${2:-/tmp/ferry-codec-bench}
size=256M
mkdir -p "$work"

for p in gen_weights codec_bench; do
	[ -x "$build/bench/$p" ] || { echo "codec.sh: build $build/bench/$p first (make)" >&2; exit 1; }
done

dlib=/usr/share/dlib/shape_predictor_68_face_landmarks.dat
[ -f "$dlib" ] || dlib=$(dpkg -L libdlib-data 2>/dev/null | grep 'shape_predictor_68_face_landmarks.dat$' | head -n 1 || true)

[ -f "$work/bf16.safetensors" ] ||
	"$build/bench/gen_weights" --dtype bf16 --size $size --seed 1 "$work/bf16.safetensors"
[ -f "$work/fp32.safetensors" ] ||
	"$build/bench/gen_weights" --dtype fp32 --size $size --seed 1 "$work/fp32.safetensors"
[ -f "$work/random.bin" ] || head -c $size /dev/urandom >"$work/random.bin"

# Fastest of 3 runs of a command, in seconds.
best3() {
	best=
	for _ in 1 2 3; do
		t0=$(date +%s.%N)
		"$@" >/dev/null
		t1=$(date +%s.%N)
		best=$(echo "$t0 $t1 $best" | awk '{ d = $2 - $1; if ($3 != "" && $3 < d) d = $3; printf "%.4f", d }')
	done
	echo "$best"
}

echo "codec benchmark on $(uname -m), $(nproc) cores, $(date -u +%Y-%m-%d)"
for f in "$work/bf16.safetensors" "$work/fp32.safetensors" "$dlib" "$work/random.bin"; do
	if [ -z "$f" ] || [ ! -f "$f" ]; then
		echo "== skipped: dlib model not found (install libdlib-data)"
		continue
	fi
	cat "$f" >/dev/null
	b2=$(best3 b2sum "$f")
	ct=$(best3 cat "$f")
	bytes=$(wc -c <"$f")
	echo
	echo "== $(basename "$f"): $bytes bytes; b2sum $b2 s ($(echo "$bytes $b2" | awk '{printf "%.2f", $1 / $2 / 1e9}') GB/s), cat $ct s"
	"$build/bench/codec_bench" --b2sum "$b2" --cat "$ct" "$f"
done
