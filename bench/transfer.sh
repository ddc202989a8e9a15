#!/bin/sh
# Two ferryd daemons on loopback moving one model, against a plain socat copy
# of the same bytes in the same run, and the daemons' peak memory.
#
#   bench/transfer.sh [SIZE...]    SIZE in bytes or with K/M/G; default 1G
#
# For each SIZE: generates a bf16 safetensors file (bench/gen_weights), then
#   - socat: copies the file from one socat process to another over TCP on
#     127.0.0.1 into a file on the same file system, then `sync` (what the
#     receiving daemon does too: its store is fsync'd);
#   - ferry: publishes the file into node A's store (`ferryctl --store`, not
#     timed), starts A and B (B dials A, wants nothing by itself,
#     auto_activate off so no copy is materialized), and times
#     `ferryctl fetch NAME --wait` on B: the handshake, manifests, index,
#     every chunk requested, sent encrypted, decoded, verified against its id
#     and committed to B's LMDB store;
#   - B's copy is exported and compared with the source (cmp), so a fast
#     wrong transfer cannot pass.
# Best of RUNS (default 3) for each tool; the ferry runs each start from an
# empty receiver. Prints the ratio socat time / ferry time (goal >= 0.5) and
# each daemon's peak memory: VmHWM (peak resident set, includes LMDB's
# mapped file pages, which the kernel can drop at any time) and the peak of
# RssAnon sampled every 100 ms (the daemon's own heap, the part that must
# stay bounded; goal <= 64 MiB, independent of the model's size).
# FERRY_BUILDDIR chooses the build; TMPDIR where files and stores go
# (default /var/tmp, a disk).
set -eu

runs=${RUNS:-3}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${FERRY_BUILDDIR:-$top/build}
ctl=$build/ferryctl
ferryd=$build/ferryd
gen=$build/bench/gen_weights
for p in "$ctl" "$ferryd" "$gen"; do
	[ -x "$p" ] || { echo "transfer.sh: $p is not built (./quickstart build)" >&2; exit 1; }
done
command -v socat >/dev/null || { echo "transfer.sh: socat is not installed" >&2; exit 1; }
export LC_ALL=C
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench-transfer-XXXXXX")
pids=""
cleanup() {
	for p in $pids; do kill -9 "$p" 2>/dev/null || :; done
	wait 2>/dev/null || :
	rm -rf "$work"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a ? b : a) }'; }
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b > a ? b : a) }'; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

"$ctl" keygen --out "$work/pub.key" | tail -n 1 >"$work/pub"
"$ctl" netkey --out "$work/net.key" >/dev/null

# node_conf NAME PORT [PEER]
node_conf() {
	mkdir -p "$work/$1"
	cat >"$work/$1/ferryd.conf" <<CONF
[node]
state_dir = $work/$1/state
socket = $work/$1/ferryd.sock
socket_group =
listen = 127.0.0.1:$2
network_key_file = $work/net.key
[peers]
lan_discovery = off
${3:+peer = $3}
[trust]
publisher = $(cat "$work/pub")
[models]
want =
auto_activate = off
CONF
}

# start NAME: ferryd in the background, its pid in $work/NAME/pid; waits
# until its socket answers.
start() {
	"$ferryd" -c "$work/$1/ferryd.conf" >>"$work/$1/log" 2>&1 &
	echo $! >"$work/$1/pid"
	pids="$pids $!"
	i=0
	until "$ctl" --socket "$work/$1/ferryd.sock" status >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 100 ] || { echo "transfer.sh: ferryd $1 did not start; its log:" >&2; cat "$work/$1/log" >&2; exit 1; }
		sleep 0.1
	done
}

stop() {
	pid=$(cat "$work/$1/pid")
	kill -TERM "$pid"
	wait "$pid" || { echo "transfer.sh: ferryd $1 exited with an error; its log:" >&2; tail "$work/$1/log" >&2; exit 1; }
}

# Sample RssAnon of the pids in $work/a/pid and $work/b/pid every 100 ms
# into $work/rss.{a,b} (the maximum, KiB) until $work/sampling disappears.
sample() {
	touch "$work/sampling"
	(
		pa=$(cat "$work/a/pid") pb=$(cat "$work/b/pid") ma=0 mb=0
		while [ -f "$work/sampling" ]; do
			a=$(kib "$pa" RssAnon 2>/dev/null || echo 0) b=$(kib "$pb" RssAnon 2>/dev/null || echo 0)
			[ "${a:-0}" -gt "$ma" ] && ma=$a
			[ "${b:-0}" -gt "$mb" ] && mb=$b
			echo "$ma" >"$work/rss.a"
			echo "$mb" >"$work/rss.b"
			sleep 0.1
		done
	) &
	sampler=$!
}

for arg in "${@:-1G}"; do
	size=$(numfmt --from=iec "$arg")
	rm -rf "$work/src" "$work/a" "$work/b" "$work/copy" "$work/out"
	mkdir "$work/src"
	"$gen" --dtype bf16 --size "$size" --seed 1 "$work/src/model.safetensors" >/dev/null
	cat "$work/src/model.safetensors" >/dev/null
	sync

	best_socat=""
	for _ in $(seq "$runs"); do
		p=$(port)
		socat -u "TCP-LISTEN:$p,bind=127.0.0.1,reuseaddr" "OPEN:$work/copy,creat,trunc" &
		lpid=$!
		pids="$pids $lpid"
		sleep 0.3
		t0=$(now)
		socat -u "OPEN:$work/src/model.safetensors" "TCP:127.0.0.1:$p"
		wait "$lpid"
		sync
		t1=$(now)
		cmp -s "$work/copy" "$work/src/model.safetensors" || { echo "transfer.sh: the socat copy differs" >&2; exit 1; }
		rm -f "$work/copy"
		best_socat=$(min "$best_socat" "$(secs "$t0" "$t1")")
	done

	pa=$(port) pb=$(port)
	node_conf a "$pa"
	encoded=$("$ctl" --store "$work/a/state" --json publish --key "$work/pub.key" bench 1 "$work/src" 2>>"$work/publish.log" |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["stored_bytes"])')
	start a
	best_ferry="" all="" hwm_a=0 hwm_b=0 anon_a=0 anon_b=0
	for _ in $(seq "$runs"); do
		rm -rf "$work/b"
		node_conf b "$pb" "127.0.0.1:$pa"
		start b
		sample
		t0=$(now)
		"$ctl" --socket "$work/b/ferryd.sock" fetch bench --wait >/dev/null
		t1=$(now)
		rm -f "$work/sampling"
		wait "$sampler"
		t=$(secs "$t0" "$t1")
		all="$all $t"
		best_ferry=$(min "$best_ferry" "$t")
		hwm_a=$(max "$hwm_a" "$(kib "$(cat "$work/a/pid")" VmHWM)")
		hwm_b=$(max "$hwm_b" "$(kib "$(cat "$work/b/pid")" VmHWM)")
		anon_a=$(max "$anon_a" "$(cat "$work/rss.a")")
		anon_b=$(max "$anon_b" "$(cat "$work/rss.b")")
		rm -rf "$work/out"
		mkdir "$work/out"
		"$ctl" --socket "$work/b/ferryd.sock" export bench "$work/out" >/dev/null
		cmp -s "$work/out/model.safetensors" "$work/src/model.safetensors" ||
			{ echo "transfer.sh: B's export differs from the source" >&2; exit 1; }
		stop b
	done
	stop a

	echo "size:      $size bytes, bf16 safetensors (gen_weights --seed 1), $encoded bytes encoded; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "socat:     $best_socat s (best of $runs; TCP on 127.0.0.1 into a file, then sync)"
	echo "ferry:     $best_ferry s (best of $runs:$all; fetch --wait on B, export identical)"
	awk -v s="$best_socat" -v f="$best_ferry" -v b="$size" 'BEGIN {
		printf "ratio:     %.2f (socat time / ferry time; goal >= 0.5); ferry %.0f MB/s of model data\n", s / f, b / f / 1e6 }'
	echo "memory:    sender A VmHWM $((hwm_a / 1024)) MiB, RssAnon peak $((anon_a / 1024)) MiB; receiver B VmHWM $((hwm_b / 1024)) MiB, RssAnon peak $((anon_b / 1024)) MiB (goal: RssAnon <= 64 MiB)"
done
