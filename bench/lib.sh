# The set-up bench/publish.sh and bench/export.sh share; sourced, not run.
#
# bench_init NAME SIZE makes a work directory $work (removed on exit) under
# TMPDIR (default /var/tmp, a disk), a signing key $work/key, and the test
# file $file of SIZE bytes (SIZE as numfmt --from=iec reads it): a bf16
# safetensors file from bench/gen_weights --seed 1, or random bytes if that
# is not built, as $kind says. It also sets $runs (RUNS, default 3), $build
# (FERRY_BUILDDIR, default the build/ beside bench/) and $ctl (ferryctl).

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a ? b : a) }'; }

bench_init() {
	size=$(numfmt --from=iec "$2")
	runs=${RUNS:-3}
	top=$(cd "$(dirname "$0")/.." && pwd)
	build=${FERRY_BUILDDIR:-$top/build}
	ctl=$build/ferryctl
	gen=$build/bench/gen_weights
	work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench-$1-XXXXXX")
	trap 'rm -rf "$work"' EXIT INT TERM

	mkdir "$work/src"
	file=$work/src/model.safetensors
	if [ -x "$gen" ]; then
		kind="bf16 safetensors (gen_weights --seed 1)"
		"$gen" --dtype bf16 --size "$size" --seed 1 "$file" >/dev/null
	else
		kind="random bytes (bench/gen_weights not built)"
		head -c "$size" /dev/urandom >"$file"
	fi
	"$ctl" keygen --out "$work/key" >/dev/null
}
