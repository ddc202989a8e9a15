#!/bin/bash
# Rate limits measured in the lab: HQ and one site node over a 40 Mbit/s WAN
# link (faster than every limit), HQ publishing a model the site fetches.
#   1. the site's wan_download_rate = 4mbit from ferryd.conf
#   2. `ferryctl limit wan_download 6mbit` on the site, at run time
#   3. `ferryctl limit wan_download 0` on the site: HQ's upload_rate = 10mbit
#      (its ferryd.conf) is the limit left
# Each phase waits LIMITS_SETTLE s after the change, then measures the rate
# over LIMITS_WINDOW s (>= 10) from the daemons' byte counters (ferryctl
# status --json: rx_wan on the site, tx_wan on HQ) and asserts it is within
# 10% of the limit: a check that the limiter is right over a wide window,
# not a speed assertion. The link's own figure (interface counters, headers
# included) is printed beside it. Root only (exit 77 otherwise); about 60 s once the lab is up.
[ -n "$BASH_VERSION" ] || exec bash "$0" "$@"
set -u

src=${FERRY_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
export FERRY_BUILDDIR=${FERRY_BUILDDIR:-$src/build}
# shellcheck source=tests/lab/lab.sh
. "$src/tests/lab/lab.sh"
# shellcheck source=tests/lab/ferry.sh
. "$src/tests/lab/ferry.sh"

LAB_SITES=1
LAB_NODES=1
LAB_RATE=40mbit
LAB_DELAY=20
LAB_LOSS=0
LAB_OUTAGE=
settle=${LIMITS_SETTLE:-4}
window=${LIMITS_WINDOW:-12}

ferry_scenario_require limits || exit 77
"$FERRYCTL" help limit >/dev/null 2>&1 || {
	echo "limits: skipped: this ferryctl has no limit command"
	exit 77
}

lab_on_down() {
	local f
	[ "$1" -eq 0 ] && return 0
	for f in "$LAB_DIR"/ferry/*/ferryd.log; do
		echo "--- ${f#"$LAB_DIR"/}"
		tail -n 15 "$f"
	done
}

# counter NODE KEY: one byte counter of NODE's `ferryctl status --json`.
counter() {
	ferry_ctl "$1" --json status | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# measure NAME NODE KEY LIMIT_BPS: the rate of NODE's counter KEY over the
# window, against the limit; the WAN link's inbound rate beside it.
failed=0
measure() {
	local name=$1 node=$2 key=$3 limit=$4 b0 b1 t0 t1 w0 w1 _
	sleep "$settle"
	t0=$(date +%s.%N)
	b0=$(counter "$node" "$key")
	read -r w0 _ < <(lab_wan_bytes 1)
	sleep "$window"
	t1=$(date +%s.%N)
	b1=$(counter "$node" "$key")
	read -r w1 _ < <(lab_wan_bytes 1)
	if ! awk -v n="$name" -v b0="$b0" -v b1="$b1" -v t0="$t0" -v t1="$t1" -v w0="$w0" \
		-v w1="$w1" -v l="$limit" 'BEGIN {
		r = (b1 - b0) * 8 / (t1 - t0); w = (w1 - w0) * 8 / (t1 - t0)
		printf "%s: limit %.2f Mbit/s, measured %.3f Mbit/s (%.3f of the limit) over %.1f s; WAN link %.3f Mbit/s with headers\n", \
			n, l / 1e6, r / 1e6, r / l, t1 - t0, w / 1e6
		exit (r >= 0.9 * l && r <= 1.1 * l) ? 0 : 1 }'; then
		echo "FAIL: $name: not within 10% of the limit"
		failed=1
	fi
}

t_start=$(date +%s)
lab_up || exit 1
lab_log "lab up after $(($(date +%s) - t_start)) s"
model=$LAB_DIR/model
mkdir -p "$model" &&
	"$FERRY_BUILDDIR/bench/gen_weights" --dtype fp32 --size 100663296 --seed 11 \
		"$model/model.safetensors" >/dev/null || exit 1

ferry_init || exit 1
ferry_start hq hq '[limits]\nupload_rate = 10mbit' || exit 1
ferry_start s1n1 s1 '[limits]\nwan_download_rate = 4mbit' || exit 1
ferry_publish lim 1 "$model" || {
	echo "FAIL: publish on hq"
	exit 1
}
echo "model: ${FERRY_ENC_BYTES:-?} bytes encoded, published $(($(date +%s) - t_start)) s after the start"
# The fetch is under way once WAN bytes arrive.
for _ in $(seq 1 100); do
	[ "$(counter s1n1 rx_wan)" -gt 0 ] && break
	sleep 0.2
done

measure "wan_download_rate = 4mbit (config)" s1n1 rx_wan 4000000
ferry_ctl s1n1 limit wan_download 6mbit >/dev/null || exit 1
measure "ferryctl limit wan_download 6mbit" s1n1 rx_wan 6000000
ferry_ctl s1n1 limit wan_download 0 >/dev/null || exit 1
measure "hq upload_rate = 10mbit (config)" hq tx_wan 10000000

if [ "$(ferry_ctl s1n1 --json models | python3 -c 'import json, sys; print(any(r["present_pct"] >= 100 for r in json.load(sys.stdin)["models"]))')" = True ]; then
	echo "FAIL: the model arrived before the measurements ended: make it larger"
	failed=1
fi
exit "$failed"
