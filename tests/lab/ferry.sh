# shellcheck shell=bash
# ferry on the lab: one ferryd per lab node, driven through ferryctl's
# documented commands (DESIGN.md, ferryctl(1)). Sourced after lab.sh by
# tests/lab/ci-short.sh and bench/swarm. Everything lives under
# $LAB_DIR/ferry, so lab_down removes it with the daemons.
#
#   ferry_available || { echo "ferry: not available yet ($FERRY_MISSING)"; ... }
#   ferry_init                       # publisher key and network key
#   ferry_start hq hq; ferry_start s1n1 s1 ...
#   ferry_publish NAME VERSION DIR   # on hq; sets FERRY_ENC_BYTES
#   ferry_wait NODE NAME@VERSION SECONDS
#   ferry_same NODE NAME@VERSION DIR # exported files byte-identical to DIR?
#   ferry_status NODE KEY...         # values from ferryctl --json status
#   ferry_stop                       # stop the daemons (lab_down would too)

FERRYD=${FERRYD:-${FERRY_BUILDDIR:-build}/ferryd}
FERRYCTL=${FERRYCTL:-${FERRY_BUILDDIR:-build}/ferryctl}
FERRY_MISSING=
FERRY_ENC_BYTES=
ferry__pub=
ferry__pids=

# ferry_available: 0 if the built ferryd and ferryctl have what the lab's
# scenarios use; otherwise 1, with FERRY_MISSING naming what is missing. It
# asks the programs (ferryd --version, the commands ferryctl --help lists,
# whether a daemon answers ferryctl status), so the scenarios start running by
# themselves once the daemon lands.
ferry_available() {
	local help c
	FERRY_MISSING=
	if [ ! -x "$FERRYD" ] || ! "$FERRYD" --version >/dev/null 2>&1; then
		FERRY_MISSING="no working $FERRYD --version"
		return 1
	fi
	if [ ! -x "$FERRYCTL" ]; then
		FERRY_MISSING="no $FERRYCTL"
		return 1
	fi
	help=$("$FERRYCTL" --help 2>&1)
	for c in keygen netkey status publish fetch models export; do
		printf '%s\n' "$help" | grep -qw -- "$c" || FERRY_MISSING="$FERRY_MISSING $c"
	done
	if [ -n "$FERRY_MISSING" ]; then
		FERRY_MISSING="ferryctl --help lists no:$FERRY_MISSING"
		return 1
	fi
	ferry__probe
}

# ferry_scenario_require NAME: 0 if scenario NAME can run here: the lab can
# (lab_require, root and the tools) and ferry has what it drives
# (ferry_available); otherwise 1, having said why NAME is skipped.
ferry_scenario_require() {
	lab_require || return 1
	ferry_available && return 0
	echo "$1: skipped: ferry cannot run it yet ($FERRY_MISSING)"
	return 1
}

# Start a ferryd that neither listens nor looks for peers, with every path in
# a temporary directory, and see whether it answers `ferryctl status`.
ferry__probe() {
	local dir pid rc=1
	dir=$(mktemp -d "${TMPDIR:-/tmp}/ferry-probe.XXXXXX") || return 1
	printf '[node]\nlisten = off\n[peers]\nlan_discovery = off\n' >"$dir/ferryd.conf"
	"$FERRYCTL" netkey --out "$dir/network.key" >/dev/null 2>&1
	"$FERRYD" --dev "$dir" 2>"$dir/ferryd.log" &
	pid=$!
	for _ in $(seq 1 50); do
		if "$FERRYCTL" --socket "$dir/ferryd.sock" status >/dev/null 2>&1; then
			rc=0
			break
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	[ "$rc" -eq 0 ] || FERRY_MISSING="a ferryd --dev does not answer ferryctl status"
	rm -rf "$dir"
	return "$rc"
}

ferry__dir() {
	printf '%s/ferry/%s' "$LAB_DIR" "$1"
}

# ferry_ctl NODE ARGS...: ferryctl against NODE's daemon, inside NODE's namespace.
ferry_ctl() {
	local node=$1
	shift
	lab_exec "$node" "$FERRYCTL" --socket "$(ferry__dir "$node")/ferryd.sock" "$@"
}

# ferry_init: a publisher key pair and a network key for the whole lab.
ferry_init() {
	mkdir -p "$LAB_DIR/ferry" || return 1
	ferry__pub=$("$FERRYCTL" keygen --out "$LAB_DIR/ferry/publisher.key" | tail -n 1) &&
		[ -n "$ferry__pub" ] &&
		"$FERRYCTL" netkey --out "$LAB_DIR/ferry/network.key" >/dev/null
}

# ferry_start NODE SITE [CONFIG-LINES]: start ferryd in NODE's namespace with
# development paths under its own directory (ferryd --dev), the lab's network
# key, the publisher trusted, HQ as the configured peer (except on HQ), every
# model wanted. CONFIG-LINES, if given, end the [models] section: they may
# open further sections ("[limits]\nwan_download_rate = 2mbit"). Returns once
# the daemon answers on its socket (at most 15 s).
ferry_start() {
	local node=$1 site=$2 extra=${3:-} dir peer=
	dir=$(ferry__dir "$node")
	mkdir -p "$dir" && cp "$LAB_DIR/ferry/network.key" "$dir/network.key" || return 1
	[ "$node" = hq ] || peer="peer = $(lab_addr hq):7440"
	cat >"$dir/ferryd.conf" <<EOF
[node]
listen = 0.0.0.0:7440
site = $site
[peers]
$peer
lan_discovery = on
${LAB_CC:+wan_congestion = $LAB_CC}
[trust]
publisher = $ferry__pub
[models]
want = *
$(printf '%b' "$extra")
EOF
	lab_exec "$node" "$FERRYD" --dev "$dir" 2>>"$dir/ferryd.log" &
	ferry__pids="$ferry__pids $!"
	for _ in $(seq 1 150); do
		ferry_ctl "$node" status >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	lab_log "ferryd on $node did not answer on its socket; $dir/ferryd.log:"
	tail -n 20 "$dir/ferryd.log" >&2
	return 1
}

# ferry_start_all: ferry_start on HQ and on every node of every site (the
# site named sS), as the lab was built.
ferry_start_all() {
	local s n
	ferry_start hq hq || return 1
	for s in $(seq 1 "$LAB_SITES"); do
		for n in $(lab_site_nodes "$s"); do
			ferry_start "$n" "s$s" || return 1
		done
	done
}

# ferry_model DIR BYTES SEED: a bf16 safetensors file of BYTES plus a config.json in DIR.
ferry_model() {
	mkdir -p "$1" &&
		"$FERRY_BUILDDIR/bench/gen_weights" --dtype bf16 --size "$2" --seed "$3" \
			"$1/model.safetensors" >/dev/null &&
		echo '{"architectures": ["LabModel"], "torch_dtype": "bfloat16"}' >"$1/config.json"
}

# ferry_logs_tail: the last lines of every daemon's log and fetch output (for a failure).
ferry_logs_tail() {
	local f
	for f in "$LAB_DIR"/ferry/*/ferryd.log "$LAB_DIR"/ferry/*/fetch.log; do
		[ -f "$f" ] || continue
		echo "--- ${f#"$LAB_DIR"/}"
		tail -n 15 "$f"
	done
}

# ferry_stop: stop every daemon ferry_start started (SIGTERM) and wait for them.
ferry_stop() {
	local p
	for p in $ferry__pids; do
		kill "$p" 2>/dev/null
	done
	for p in $ferry__pids; do
		wait "$p" 2>/dev/null
	done
	ferry__pids=
}

# ferry_publish NAME VERSION DIR: publish DIR's files from HQ (a fresh store).
# Sets FERRY_ENC_BYTES to the encoded size of the version, from the JSON reply.
ferry_publish() {
	local out
	out=$(ferry_ctl hq --json publish --key "$LAB_DIR/ferry/publisher.key" "$1" "$2" "$3") ||
		return 1
	# shellcheck disable=SC2034 # for the scenario
	FERRY_ENC_BYTES=$(printf '%s\n' "$out" | python3 -c '
import json, sys
text = sys.stdin.read()
try:
    doc = json.loads(text)
except ValueError:
    doc = [json.loads(l) for l in text.splitlines() if l.strip()][-1]
# The encoded size of the version: enc_bytes; on a fresh store, what was
# stored; else the size times the encoded percentage.
if "enc_bytes" in doc:
    print(doc["enc_bytes"])
elif "stored_bytes" in doc:
    print(doc["stored_bytes"])
elif "size" in doc and "encoded_pct" in doc:
    print(round(doc["size"] * doc["encoded_pct"] / 100))')
}

# ferry_wait NODE NAME@VERSION SECONDS: block until NODE holds the version
# complete (ferryctl fetch --wait), retrying if the wait ends early, for at
# most SECONDS. Prints the Unix time it completed.
ferry_wait() {
	local node=$1 what=$2 end
	end=$(($(date +%s) + $3))
	while [ "$(date +%s)" -lt "$end" ]; do
		if lab_exec "$node" timeout $((end - $(date +%s) + 1)) \
			"$FERRYCTL" --socket "$(ferry__dir "$node")/ferryd.sock" fetch "$what" --wait \
			>>"$(ferry__dir "$node")/fetch.log" 2>&1; then
			date +%s.%N
			return 0
		fi
		sleep 1
	done
	lab_log "$node: $what not complete after $3 s"
	return 1
}

# ferry_same NODE NAME@VERSION DIR: 0 if NODE exports files byte-identical to DIR's.
ferry_same() {
	local out
	out=$(ferry__dir "$1")/export
	rm -rf "$out" && mkdir -p "$out" &&
		ferry_ctl "$1" export "$2" "$out" >/dev/null &&
		diff -r "$3" "$out" >/dev/null
	local rc=$?
	rm -rf "$out"
	return $rc
}

# ferry_status NODE KEY...: the values of those keys of NODE's
# `ferryctl --json status` (counters such as bytes_received, rx_wan), one line,
# space-separated; "-" for a key the daemon does not report.
ferry_status() {
	local node=$1
	shift
	ferry_ctl "$node" --json status | python3 -c '
import json, sys
doc = json.load(sys.stdin)
print(" ".join(str(doc.get(k, "-")) for k in sys.argv[1:]))' "$@"
}
