#!/bin/sh
# ferry's demonstration (./quickstart demo): three ferryd daemons on loopback,
# each with its own store, in a private temporary directory. A model is
# published on "hq"; "clinic-a" fetches it from hq while "clinic-b", which
# only knows clinic-a, fetches from it as chunks arrive. Then a retrained
# version moves only what changed. Everything is removed at the end.
#
#   tests/demo.sh [BUILDDIR]
set -eu

build=$(cd "${1:-${FERRY_BUILDDIR:-$(dirname "$0")/../build}}" && pwd)
for p in ferryd ferryctl bench/gen_weights; do
	[ -x "$build/$p" ] || { echo "demo: $build/$p is not built (run ./quickstart build)" >&2; exit 1; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/ferry-demo-XXXXXX")
pids=""
cleanup() {
	for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
cd "$T"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
# Show a command as the reader would type it, then run it.
run() {
	printf '\033[2m$ %s\033[0m\n' "$*"
	"$@"
}
ferryctl() { "$build/ferryctl" "$@"; }
gen_weights() { "$build/bench/gen_weights" "$@"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

say "1. Keys: a publisher key pair (its public half is what nodes trust) and the network key."
run ferryctl keygen --out publisher.key | tee keygen.out
tail -n 1 keygen.out >publisher.pub
run ferryctl netkey --out network.key

say "2. Three nodes: hq, clinic-a (dials hq) and clinic-b (dials clinic-a only)."
P_HQ=$(port) P_A=$(port) P_B=$(port)
node_conf() { # NAME PORT SITE PEER RATE
	mkdir -p "$1"
	cat >"$1/ferryd.conf" <<CONF
[node]
state_dir = $T/$1/state
socket = $T/$1/ferryd.sock
socket_group =
listen = 127.0.0.1:$2
site = $3
network_key_file = $T/network.key
[peers]
lan_discovery = off
${4:+peer = $4}
[trust]
publisher = $(cat publisher.pub)
[models]
want = *
[limits]
download_rate = $5
CONF
}
node_conf hq "$P_HQ" hq "" 0
node_conf clinic-a "$P_A" clinic-a "127.0.0.1:$P_HQ" 160mbit
node_conf clinic-b "$P_B" clinic-b "127.0.0.1:$P_A" 160mbit
cat clinic-a/ferryd.conf
for n in hq clinic-a clinic-b; do
	"$build/ferryd" -c "$n/ferryd.conf" >"$n/log" 2>&1 &
	pids="$pids $!"
done
for n in hq clinic-a clinic-b; do
	i=0
	until ferryctl --socket "$n/ferryd.sock" status >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || { echo "demo: $n did not start:" >&2; cat "$n/log" >&2; exit 1; }
		sleep 0.1
	done
done
run ferryctl --socket hq/ferryd.sock status

say "3. A model: 96 MiB of bf16 weights in safetensors form, and a config."
mkdir model
run gen_weights --dtype bf16 --size 96M --tensors 20 --seed 1 model/model.safetensors
echo '{"architectures": ["Demo"], "hidden_size": 1024}' >model/config.json
cp -r model model-v1

say "4. Publish it on hq as version 1. The daemon chunks and encodes; ferryctl signs with the key."
run ferryctl --socket hq/ferryd.sock publish --key publisher.key demo-llm 1 model --label "first cut"

say "5. clinic-b never talked to hq: it learns of the model by gossip and fetches it."
run ferryctl --socket clinic-b/ferryd.sock fetch demo-llm --wait
run ferryctl --socket clinic-b/ferryd.sock peers
run ferryctl --socket clinic-a/ferryd.sock models

say "6. Retrain: 10% of the tensors change. Version 2 moves only the changed chunks."
run gen_weights --dtype bf16 --size 96M --tensors 20 --seed 1 --mutate 0.1 --seed2 7 model/model.safetensors
run ferryctl --socket hq/ferryd.sock publish --key publisher.key demo-llm 2 model --label retrained
run ferryctl --socket clinic-b/ferryd.sock fetch demo-llm@2 --wait
run ferryctl --socket clinic-b/ferryd.sock models

say "7. Export both versions from clinic-b; every chunk is checked against its id."
run ferryctl --socket clinic-b/ferryd.sock export demo-llm@1 "$T/out-v1" --sha256
run ferryctl --socket clinic-b/ferryd.sock export demo-llm@2 "$T/out-v2"
run cmp model-v1/model.safetensors out-v1/model.safetensors
run cmp model/model.safetensors out-v2/model.safetensors
echo "identical, byte for byte"

say "8. Local inference reads the active version on disk:"
run ls -l clinic-b/state/models/demo-llm/

say "Done. ferryctl help lists the commands; man -l docs/ferryctl.1 explains them."
