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
# another process says nothing about the code; for the same reason the CPU
# time of publish (user + system) is printed too. FERRY_BUILDDIR chooses the
# build; TMPDIR where the file and the store go (default /var/tmp, a disk).
# Needs /usr/bin/time (Debian package time).
set -eu

. "$(dirname "$0")/lib.sh"
bench_init publish "${1:-1G}"
cat "$file" >/dev/null
# Write the new file out now: its writeback would otherwise compete with the store's fsyncs.
sync

b2="" pub="" all="" cpu=""
i=0
while [ "$i" -lt "$runs" ]; do
	t0=$(now); b2sum "$file" >/dev/null; t1=$(now)
	b2=$(min "$b2" "$(secs "$t0" "$t1")")
	rm -rf "$work/state"; sync
	t0=$(now)
	/usr/bin/time -f "%U %S" -o "$work/cpu" \
		"$ctl" --store "$work/state" --json publish --key "$work/key" bench 1 "$work/src" \
		>"$work/out.json" 2>/dev/null
	t1=$(now)
	all="$all $(secs "$t0" "$t1")"
	pub=$(min "$pub" "$(secs "$t0" "$t1")")
	cpu=$(min "$cpu" "$(awk '{ print $1 + $2 }' "$work/cpu")")
	i=$((i + 1))
done
enc=$(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["encoded_pct"])' \
	"$work/out.json")

echo "file:    $(stat -c %s "$file") bytes, $kind"
echo "b2sum:   $b2 s (best of $runs)"
echo "publish: $pub s (best of $runs:$all; encoded to $enc% of raw; $(nproc) CPUs)"
echo "publish CPU time: $cpu s (user + system, least of $runs; wall time cannot beat it / CPUs)"
awk -v p="$pub" -v b="$b2" 'BEGIN { printf "ratio:   %.2f (publish / b2sum; goal <= 2)\n", p / b }'
