#!/bin/sh
# ferry's demonstration (./quickstart demo): for now an offline one on a store
# directory, showing a publisher's side of the story: a key, a model published,
# a retrained version that costs only what changed, and the files written back
# out byte for byte. The daemon demonstration replaces it once ferryd runs.
#
#   tests/demo.sh [BUILDDIR]
set -eu

build=${1:-$(cd "$(dirname "$0")/.." && pwd)/build}
ctl=$build/ferryctl
gen=$build/bench/gen_weights
for p in "$ctl" "$gen"; do
	[ -x "$p" ] || { echo "demo: $p is not built (run ./quickstart build)" >&2; exit 1; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/ferry-demo-XXXXXX")
trap 'rm -rf "$T"' EXIT INT TERM
cd "$T"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
# Show a command as the reader would type it, then run it.
run() {
	printf '\033[2m$ %s\033[0m\n' "$*"
	"$@"
}
ferryctl() { "$ctl" "$@"; }
gen_weights() { "$gen" "$@"; }

say "1. A publisher key. The private half stays here; the last line is what nodes trust."
run ferryctl keygen --out publisher.key

say "2. A model: 96 MiB of bf16 weights in safetensors form, and a config."
mkdir model
run gen_weights --dtype bf16 --size 96M --tensors 20 --seed 1 model/model.safetensors
echo '{"architectures": ["Demo"], "hidden_size": 1024}' >model/config.json
cp -r model model-v1

say "3. Publish it as version 1: chunk, encode, store, sign. No daemon: --store works on a directory."
run ferryctl --store state publish --key publisher.key demo-llm 1 model --label "first cut"

say "4. Retrain: 10% of the tensors change and the header grows a few bytes, shifting everything after it."
run gen_weights --dtype bf16 --size 96M --tensors 20 --seed 1 --mutate 0.1 --seed2 7 model/model.safetensors
say "   Publish version 2. Content-defined chunks realign after the header, so only the changed tensors are new:"
run ferryctl --store state publish --key publisher.key demo-llm 2 model --label retrained

say "5. What the store holds."
run ferryctl --store state models

say "6. Write both versions back out; every chunk is checked against its id on the way."
run ferryctl --store state export demo-llm@1 out-v1 --sha256
run ferryctl --store state export demo-llm out-v2
run cmp model-v1/model.safetensors out-v1/model.safetensors
run cmp model/model.safetensors out-v2/model.safetensors
echo "identical, byte for byte"

say "7. Check every stored chunk of version 2."
run ferryctl --store state verify demo-llm@2

say "Done. ferryctl help lists the commands; man -l docs/ferryctl.1 explains them."
