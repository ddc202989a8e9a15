#!/bin/sh
# Peer transport throughput as a ratio against a plain socat copy of the same
# file over loopback, in the same run: bench_peer moves the file between two
# peer_nets (two threads, as two daemons) with the handshake, encryption,
# framing, queues and pacing of real transfers; socat copies it from one
# process to another over TCP with nothing around it.
#
# usage: bench/peer.sh [BUILDDIR]   (SIZE_MIB=1024, REPS=3 by default; medians)
set -eu
build=${1:-${FERRY_BUILDDIR:-.}}
bench="$build/bench/bench_peer"
size=${SIZE_MIB:-1024}
reps=${REPS:-3}
[ -x "$bench" ] || { echo "peer.sh: $bench not built (make bench/bench_peer)" >&2; exit 1; }
command -v socat >/dev/null || { echo "peer.sh: socat is not installed" >&2; exit 1; }
export LC_ALL=C
# tmpfs where there is one, so neither side waits for a disk.
dir=${TMPDIR:-/dev/shm}
[ -d "$dir" ] && [ -w "$dir" ] || dir=/tmp
tmp=$(mktemp -d "$dir/ferry-bench-peer.XXXXXX")
pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null || :; done; rm -rf "$tmp"' EXIT
head -c $((size * 1024 * 1024)) /dev/urandom >"$tmp/data"

now() { date +%s.%N; }

# socat over loopback -> GB/s: a listener writing to /dev/null, a sender reading the file.
socat_rate() {
	port=$(awk 'BEGIN { srand(); print 20000 + int(rand() * 20000) }')
	socat -u "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr" OPEN:/dev/null &
	pid=$!
	pids="$pids $pid"
	sleep 0.3
	t0=$(now)
	socat -u OPEN:"$tmp/data" "TCP:127.0.0.1:$port"
	wait "$pid"
	t1=$(now)
	awk -v b=$((size * 1024 * 1024)) -v t0="$t0" -v t1="$t1" \
		'BEGIN { printf "%.3f", b / (t1 - t0) / 1e9 }'
}

ferry_rate() {
	"$bench" "$tmp/data" 2>/dev/null | sed -n 's/.*GB\/s=\([0-9.]*\).*/\1/p'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

: >"$tmp/f"
: >"$tmp/s"
: >"$tmp/r"
i=0
while [ $i -lt "$reps" ]; do
	f=$(ferry_rate)
	s=$(socat_rate)
	echo "$f" >>"$tmp/f"
	echo "$s" >>"$tmp/s"
	awk -v f="$f" -v s="$s" 'BEGIN { printf "%.3f\n", f / s }' >>"$tmp/r"
	echo "run $((i + 1)): ferry $f GB/s, socat $s GB/s" >&2
	i=$((i + 1))
done
printf '%-10s %12s %12s %7s\n' size "ferry GB/s" "socat GB/s" ratio
printf '%-10s %12s %12s %7s\n' "${size} MiB" "$(median <"$tmp/f")" "$(median <"$tmp/s")" \
	"$(median <"$tmp/r")"
