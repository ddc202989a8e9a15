#!/bin/bash
# Outages during a transfer (issue 4, point 4): HQ and 2 sites of 2 nodes,
# a 4 Mbit/s WAN with 100 ms one way and 1% loss each way; HQ publishes a
# 24 MiB bf16 model (≈ 17 MB encoded, ≈ 34 s of link time) and site 1's link
# flaps, 10 s down every 40 s, the first time 5 s after the publish, so it is
# down once or twice during the transfer; site 2's link stays up. Checks, from
# what the daemons report:
#   - every node completes, and its export is byte-identical to the model;
#   - no node fetched a chunk twice: the chunk bytes it received in all
#     (ferryctl status: bytes_received) stay within the encoded size plus
#     SLACK: requests racing at the end (1 MiB), 1%, and an average chunk
#     (256 KiB) per outage, for the request caught by it and raced after;
#   - site 1's link did go down during the transfer, and site 1's nodes
#     replaced a connection whose path had gone silent (ferryctl status:
#     reconnects; docs/scheduling.md, "Outages") rather than wait for TCP.
# It prints, without asserting, the chunk bytes each site's nodes received
# over the WAN (rx_wan, summed): issue 4's goal for that is 1.05 x the
# encoded size, and with a flapping link ferry is at 1.04-1.16 (bench/swarm
# --outage measures it). Prints each node's time and counters; asserts no
# timing. Root only (exit 77 otherwise), and exit 77 while the built
# ferryd/ferryctl lack the commands it drives. About 70 s.
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
LAB_RATE=4mbit
LAB_DELAY=100
LAB_LOSS=1
LAB_OUTAGE=

ferry_scenario_require outage || exit 77

# On failure, show what the daemons said.
lab_on_down() {
	[ "$1" -eq 0 ] && return 0
	cat "$LAB_DIR/outages"
	ferry_logs_tail
}

lab_up || exit 1
model=$LAB_DIR/model
ferry_model "$model" 25165824 11 || exit 1

ferry_init || exit 1
ferry_start_all || exit 1

t0=$(date +%s.%N)
if ! ferry_publish outage 1 "$model" || [ -z "$FERRY_ENC_BYTES" ]; then
	echo "FAIL: publish on hq"
	exit 1
fi
enc=$FERRY_ENC_BYTES
lab_outage_start 1 10 30 0 5

pids=
for n in $(lab_nodes | grep -v '^hq$'); do
	ferry_wait "$n" outage@1 300 >"$LAB_DIR/$n.done" &
	pids="$pids $!"
done
for p in $pids; do
	wait "$p"
done
t1=$(date +%s.%N)

downs=$(awk -v t0="$t0" -v t1="$t1" '$1 == "down" && $2 == 1 && $3 > t0 && $3 < t1' \
	"$LAB_DIR/outages" | grep -c .)
slack=$(awk -v e="$enc" -v d="$downs" 'BEGIN { printf "%.0f", 1048576 + e / 100 + d * 262144 }')
failed=0
s1_reconnects=0
for s in 1 2; do
	site_wan=0
	for n in $(lab_site_nodes "$s"); do
		read -r rx_wan rx_all reconnects resumed < <(ferry_status "$n" rx_wan bytes_received \
			reconnects resumed_bytes)
		case "$rx_wan $rx_all $reconnects $resumed" in
		[0-9]*" "[0-9]*" "[0-9]*" "[0-9]*) ;;
		*)
			echo "FAIL: $n: ferryctl --json status gave no rx_wan, bytes_received," \
				"reconnects and resumed_bytes"
			failed=1
			continue
			;;
		esac
		site_wan=$((site_wan + rx_wan))
		[ "$s" -eq 1 ] && s1_reconnects=$((s1_reconnects + reconnects))
		if [ ! -s "$LAB_DIR/$n.done" ]; then
			echo "FAIL: $n: not complete"
			failed=1
			continue
		fi
		if ! ferry_same "$n" outage@1 "$model"; then
			echo "FAIL: $n: exported files differ from the published ones"
			failed=1
		fi
		ferry_ctl "$n" peers | sed 's/^/#   /'
		echo "# $n: complete after" \
			"$(awk -v t0="$t0" '{ printf "%.1f", $1 - t0 }' "$LAB_DIR/$n.done") s;" \
			"received $rx_all chunk bytes ($rx_wan over the WAN) of $enc encoded;" \
			"$reconnects reconnects, $resumed bytes resumed"
		if [ "$rx_all" -gt $((enc + slack)) ]; then
			echo "FAIL: $n received $rx_all chunk bytes, more than $enc encoded + $slack:" \
				"chunks were fetched twice"
			failed=1
		fi
	done
	echo "# site $s: $site_wan chunk bytes in over the WAN of $enc encoded" \
		"($(awk -v w="$site_wan" -v e="$enc" 'BEGIN { printf "%.3f", w / e }') x)"
done
echo "# site 1's link went down $downs times during the transfer"
if [ "$downs" -lt 1 ]; then
	echo "FAIL: site 1's link never went down during the transfer"
	failed=1
elif [ "$s1_reconnects" -lt 1 ]; then
	echo "FAIL: no node of site 1 replaced a connection after its link came back"
	failed=1
fi
[ "$failed" -eq 0 ] && echo "ok: every node complete and byte-identical, no node fetched a chunk twice"
exit "$failed"
