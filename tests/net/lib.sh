# Helpers for the multi-daemon tests (sourced, not run).
#
# Each test gets a temporary directory $T with one network key, one
# publisher key pair trusted by every node, and one directory per node
# (config, state, socket, log). Every daemon started here is killed when the
# test exits, by its own pid; on failure the tail of every node's log is
# printed (FERRY_NET_KEEP=1 keeps the directory). The programs come from $FERRY_BUILDDIR (set by `make check`;
# ./build next to the sources otherwise).
set -eu
# quickstart's ASan and distcheck stages skip whole suites through FERRY_SKIP
# (a list of suite names) to stay within their time budgets.
case " ${FERRY_SKIP:-} " in *" net "*) echo "skipped: FERRY_SKIP names the net suite"; exit 77 ;; esac

: "${FERRY_BUILDDIR:=$(cd "$(dirname "$0")/../.." && pwd)/build}"
FERRYD=$FERRY_BUILDDIR/ferryd
FERRYCTL=$FERRY_BUILDDIR/ferryctl
GEN_WEIGHTS=$FERRY_BUILDDIR/bench/gen_weights
T=$(mktemp -d "${TMPDIR:-/tmp}/ferry-net-XXXXXX")
NODES=""

cleanup() {
	status=$?
	set +e
	for n in $NODES; do
		if [ -f "$T/$n/pid" ]; then
			kill -9 "$(cat "$T/$n/pid")" 2>/dev/null
		fi
	done
	wait 2>/dev/null
	if [ "$status" -ne 0 ]; then
		for n in $NODES; do
			echo "---- log of node $n (last 40 lines) ----" >&2
			tail -n 40 "$T/$n/log" >&2
		done
	fi
	if [ -n "${FERRY_NET_KEEP:-}" ]; then
		echo "kept $T" >&2
	else
		rm -rf "$T"
	fi
	exit "$status"
}
trap cleanup EXIT INT TERM

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

say() {
	echo "# $*"
}

ctl() {
	"$FERRYCTL" "$@"
}

# A TCP port nobody listens on now (the kernel's pick for port 0).
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# net_init: the network key and the publisher key every node trusts.
net_init() {
	ctl netkey --out "$T/network.key" >/dev/null
	PUB=$(ctl keygen --out "$T/publisher.key" | tail -n 1)
}

# node_make NAME [key = value lines for [node], [peers], [models], [limits] as
#                 "section.key=value" arguments]
# Creates $T/NAME with a ferryd.conf listening on a free port of 127.0.0.1.
# The node's port is in $T/NAME/port. Extra settings, e.g. "peers.peer=127.0.0.1:4000"
# or "limits.download_rate=8mbit", are added to their section (repeatable keys
# may be given several times).
node_make() {
	name=$1
	shift
	mkdir -p "$T/$name"
	port=$(free_port)
	echo "$port" >"$T/$name/port"
	{
		echo "[node]"
		echo "state_dir = $T/$name/state"
		echo "socket = $T/$name/ferryd.sock"
		echo "listen = ${LISTEN_HOST:-127.0.0.1}:$port"
		echo "network_key_file = ${NETKEY_FILE:-$T/network.key}"
		# No group "ferry" on a test machine: leave the socket's group alone.
		case " $* " in *" node.socket_group="*) ;; *) echo "socket_group =" ;; esac
		for kv in "$@"; do
			case $kv in node.*) k=${kv#node.}; echo "${k%%=*} = ${k#*=}" ;; esac
		done
		echo "[peers]"
		case " $* " in *" peers.lan_discovery="*) ;; *) echo "lan_discovery = off" ;; esac
		for kv in "$@"; do
			case $kv in peers.*) k=${kv#peers.}; echo "${k%%=*} = ${k#*=}" ;; esac
		done
		echo "[trust]"
		for k in ${TRUST:-$PUB}; do echo "publisher = $k"; done
		echo "[models]"
		for kv in "$@"; do
			case $kv in models.*) k=${kv#models.}; echo "${k%%=*} = ${k#*=}" ;; esac
		done
		echo "[limits]"
		for kv in "$@"; do
			case $kv in limits.*) k=${kv#limits.}; echo "${k%%=*} = ${k#*=}" ;; esac
		done
	} >"$T/$name/ferryd.conf"
	"$FERRYD" -c "$T/$name/ferryd.conf" --check-config >/dev/null ||
		fail "node $name: bad config $T/$name/ferryd.conf"
	NODES="$NODES $name"
}

# The "127.0.0.1:PORT" address of a node made by node_make.
addr_of() {
	echo "127.0.0.1:$(cat "$T/$1/port")"
}

# node_start NAME [VAR=value ...]: start ferryd with debug logs of fetch,
# gossip and peer, environment additions given as arguments; waits until it
# is ready. node_make reads NETKEY_FILE (another network key), TRUST
# (publisher keys, space-separated) and LISTEN_HOST (default 127.0.0.1) from
# the environment.
node_start() {
	name=$1
	shift
	lines=0
	[ -f "$T/$name/log" ] && lines=$(wc -l <"$T/$name/log")
	env "$@" "$FERRYD" -c "$T/$name/ferryd.conf" -d fetch,gossip,peer >>"$T/$name/log" 2>&1 &
	echo $! >"$T/$name/pid"
	wait_log "$name" "node [0-9a-f]* ready" 20 "$lines"
}

# node_stop NAME: SIGTERM and wait for the exit (status 0 wanted).
node_stop() {
	pid=$(cat "$T/$1/pid")
	kill -TERM "$pid"
	status=0
	wait "$pid" || status=$?
	rm -f "$T/$1/pid"
	[ "$status" -eq 0 ] || fail "node $1 exited with status $status after SIGTERM"
}

# node_kill NAME: SIGKILL, no chance to flush anything.
node_kill() {
	pid=$(cat "$T/$1/pid")
	kill -9 "$pid"
	wait "$pid" 2>/dev/null || true
	rm -f "$T/$1/pid"
}

# wait_log NAME REGEX SECONDS [SKIP_LINES]: wait until the node's log has a
# line matching REGEX (after the first SKIP_LINES lines), or fail.
wait_log() {
	deadline=$(($(date +%s) + $3))
	while :; do
		if tail -n +"$((${4:-0} + 1))" "$T/$1/log" 2>/dev/null | grep -q -- "$2"; then
			return 0
		fi
		if [ -f "$T/$1/pid" ] && ! kill -0 "$(cat "$T/$1/pid")" 2>/dev/null; then
			fail "node $1 died while waiting for '$2'"
		fi
		[ "$(date +%s)" -lt "$deadline" ] || fail "node $1: no '$2' in the log after $3 s"
		sleep 0.2
	done
}

# make_model DIR MIB [SEED]: a model of bf16 weights plus small files.
make_model() {
	mkdir -p "$1/sub"
	"$GEN_WEIGHTS" --dtype bf16 --size "$2M" --seed "${3:-1}" "$1/model.safetensors" >/dev/null
	python3 -c '
import random, sys
r = random.Random(int(sys.argv[2]))
open(sys.argv[1] + "/sub/tokenizer.json", "wb").write(r.randbytes(300001))
open(sys.argv[1] + "/config.json", "w").write("{\"layers\": %d}\n" % r.randint(1, 99))
' "$1" "${3:-1}"
}

# publish NODE NAME VERSION DIR: publish into a stopped node's store, signed
# with $PUBLISHER_KEY (default: the publisher every node trusts).
publish() {
	ctl --store "$T/$1/state" publish --key "${PUBLISHER_KEY:-$T/publisher.key}" "$2" "$3" "$4" \
		>/dev/null
}

# export_check NODE NAME@VERSION DIR: export from the node's store (the
# daemon may run: export only reads) and compare with DIR byte for byte.
export_check() {
	out="$T/export-$1-$(date +%s%N)"
	mkdir -p "$out"
	ctl --store "$T/$1/state" --trust "$PUB" export "$2" "$out" >/dev/null 2>"$T/err" ||
		fail "node $1: export of $2 failed: $(cat "$T/err")"
	(cd "$3" && find . -type f) | while read -r f; do
		cmp -s "$3/$f" "$out/$f" || fail "node $1: $f differs after export of $2"
	done
	rm -rf "$out"
}

# encoded_of NODE: the encoded size of llm@1 in bytes, from the node's
# "fetching" log line.
encoded_of() {
	sed -n 's/.*fetching llm@1: [0-9]* of \([0-9]*\) bytes present.*/\1/p' "$T/$1/log" | head -n 1
}

# status_of NODE FIELD: one numeric field of the node's `ferryctl --json status`.
status_of() {
	ctl --socket "$T/$1/ferryd.sock" --json status | sed -n "s/.*\"$2\": *\([0-9]*\).*/\1/p"
}

# resume_counters NODE: set need (the encoded size of llm@1), got (chunk
# bytes NODE received) and resumed (bytes it resumed from parts kept).
resume_counters() {
	need=$(encoded_of "$1")
	got=$(status_of "$1" bytes_received)
	resumed=$(status_of "$1" resumed_bytes)
	[ -n "$need" ] && [ -n "$got" ] && [ -n "$resumed" ] || fail "$1's log or status lacks its counters"
}

# site_fetch: publish $T/model as llm@1 on a (headquarters), start b and c
# (c dials b), the members of one site, before a, as at a clinic, and wait
# until both hold the model byte-identical.
site_fetch() {
	publish a llm 1 "$T/model"
	node_start b
	node_start c
	wait_log c "peer $(short_id b) (.*) up" 20
	node_start a
	site_done
}

# site_done: wait until b and c hold llm@1, byte-identical to $T/model.
site_done() {
	for n in b c; do wait_log "$n" "model llm version 1 complete" 90; done
	for n in b c; do export_check "$n" llm@1 "$T/model"; done
}

# served_of NODE: the bytes a stopped node served since its start (from its log).
served_of() {
	sed -n 's/.*received, \([0-9]*\) served since start.*/\1/p' "$T/$1/log" | tail -n 1
}

# one_copy SERVED NEED SLACK: headquarters served one copy of a model of NEED
# encoded bytes, give or take SLACK: each chunk crossed the site's WAN once.
one_copy() {
	[ -n "$1" ] && [ -n "$2" ] || fail "the counters are missing from the logs or the status"
	[ "$1" -le $(($2 + $3)) ] ||
		fail "a served $1 bytes for a model of $2: chunks crossed the WAN twice"
}

# has_manifest NODE NAME VERSION: the node's store holds that manifest.
has_manifest() {
	ctl --store "$T/$1/state" --trust "$PUB" --json models | python3 -c '
import json, sys
doc = json.load(sys.stdin)
rows = doc.get("models", doc) if isinstance(doc, dict) else doc
sys.exit(0 if any(r.get("name") == sys.argv[1] and int(r.get("version")) == int(sys.argv[2]) for r in rows) else 1)
' "$2" "$3"
}

# The short id (12 hex characters, as logs show it) of a started node.
short_id() {
	sed -n 's/.*node \([0-9a-f]\{12\}\)[0-9a-f]* ready.*/\1/p' "$T/$1/log" | tail -n 1
}

# The last value N of "... N bytes ..." in a log line matching REGEX.
log_number() {
	grep -- "$2" "$T/$1/log" | tail -n 1 | sed -n "s/.*$3.*/\1/p"
}
