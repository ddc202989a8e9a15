#!/bin/sh
# Store commit throughput as a ratio against dd writing the same bytes with
# O_DSYNC in the same units (one 16 MiB write per LMDB commit of 16 MiB, one
# value-sized write per one-value commit), in the same directory and run.
#
# usage: bench/store.sh [BUILDDIR]   (REPS=3 by default; the median is quoted)
set -eu
build=${1:-${FERRY_BUILDDIR:-.}}
bench="$build/bench/bench_store"
reps=${REPS:-3}
[ -x "$bench" ] || { echo "store.sh: $bench not built (make bench/bench_store)" >&2; exit 1; }
export LC_ALL=C
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-store.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# dd BS COUNT -> MB/s
dd_rate() {
	rm -f "$tmp/dd"
	dd if=/dev/zero of="$tmp/dd" bs="$1" count="$2" oflag=dsync 2>&1 |
		awk -v b=$(($1 * $2)) '/copied/ { printf "%.1f", b / $(NF-3) / 1e6 }'
	rm -f "$tmp/dd"
}

# store VALUE TOTAL MODE -> MB/s
store_rate() {
	rm -rf "$tmp/state"
	# stderr holds the store's "map grown" notices; shown only on failure.
	"$bench" "$tmp/state" "$1" "$2" "$3" 2>"$tmp/err" >"$tmp/out" || { cat "$tmp/err" >&2; exit 1; }
	sed -n 's/.* MB\/s=\([0-9.]*\) .*/\1/p' "$tmp/out"
	rm -rf "$tmp/state"
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

batch_total=$((256 * 1024 * 1024))
printf '%-8s %-22s %10s %10s %7s\n' value mode "store MB/s" "dd MB/s" ratio
for value in 65536 262144; do
	for mode in batch each; do
		if [ $mode = batch ]; then
			total=$batch_total bs=$((16 * 1024 * 1024))
		else
			total=$((value * 200)) bs=$value
		fi
		: >"$tmp/ratios"
		: >"$tmp/s"
		: >"$tmp/d"
		i=0
		while [ $i -lt "$reps" ]; do
			s=$(store_rate $value $total $mode)
			d=$(dd_rate $bs $((total / bs)))
			echo "$s" >>"$tmp/s"
			echo "$d" >>"$tmp/d"
			awk -v s="$s" -v d="$d" 'BEGIN { printf "%.3f\n", s / d }' >>"$tmp/ratios"
			i=$((i + 1))
		done
		label="commit per 16 MiB"
		[ $mode = each ] && label="commit per value"
		printf '%-8s %-22s %10s %10s %7s\n' "$((value / 1024))K" "$label" \
			"$(median <"$tmp/s")" "$(median <"$tmp/d")" "$(median <"$tmp/ratios")"
	done
done
