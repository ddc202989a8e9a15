#!/bin/bash
# The short weak-link scenario CI runs: HQ and 2 sites of 2 nodes, an 8 Mbit/s
# WAN with 100 ms one way and 1% loss each way; HQ publishes an 8 MiB bf16
# model and site 1's link goes down for 10 s two seconds later. Every node
# must end with the model complete and byte-identical (ferryctl export).
# Prints each node's time and each site's WAN bytes; asserts no timing.
# Root only (exit 77 otherwise), and exit 77 while the built ferryd/ferryctl
# lack the commands it drives. Well under 3 minutes.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
set -u

src=${FERRY_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export FERRY_BUILDDIR=${FERRY_BUILDDIR:-$src/build}
# shellcheck source=tests/lab/lab.sh
. "$src/tests/lab/lab.sh"
# shellcheck source=tests/lab/ferry.sh
. "$src/tests/lab/ferry.sh"

LAB_SITES=2
LAB_NODES=2
LAB_RATE=8mbit
LAB_DELAY=100
LAB_LOSS=1
LAB_OUTAGE=

ferry_scenario_require ci-short || exit 77

# On failure, show what the daemons said.
lab_on_down() {
	[ "$1" -eq 0 ] && return 0
	ferry_logs_tail
}

lab_up || exit 1
model=$LAB_DIR/model
ferry_model "$model" 8388608 7 || exit 1

ferry_init || exit 1
ferry_start_all || exit 1

t0=$(date +%s.%N)
ferry_publish ci 1 "$model" || {
	echo "FAIL: publish on hq"
	exit 1
}
lab_outage_start 1 10 2 1

pids=
for n in $(lab_nodes | grep -v '^hq$'); do
	ferry_wait "$n" ci@1 120 >"$LAB_DIR/$n.done" &
	pids="$pids $!"
done
failed=0
for p in $pids; do
	wait "$p" || failed=1
done

for n in $(lab_nodes | grep -v '^hq$'); do
	if [ ! -s "$LAB_DIR/$n.done" ]; then
		echo "FAIL: $n: not complete"
		failed=1
	elif ! ferry_same "$n" ci@1 "$model"; then
		echo "FAIL: $n: exported files differ from the published ones"
		failed=1
	else
		echo "ok: $n complete and byte-identical after" \
			"$(awk -v t0="$t0" '{ printf "%.1f", $1 - t0 }' "$LAB_DIR/$n.done") s"
	fi
done
grep -q '^down 1' "$LAB_DIR/outages" || {
	echo "FAIL: site 1's outage never started"
	failed=1
}
for s in 1 2; do
	read -r in out < <(lab_wan_bytes "$s")
	echo "site $s: WAN bytes in $in, out $out; in / encoded size" \
		"$(awk -v i="$in" -v e="${FERRY_ENC_BYTES:-0}" 'BEGIN { if (e > 0) printf "%.3f", i / e; else print "-" }')"
done
exit "$failed"
