# Helpers shared by the ferryctl end-to-end tests (sourced, not run).
#
# Each test works in its own temporary directory $T, removed on exit, and
# runs the ferryctl of the build tree ($FERRY_BUILDDIR, set by `make check`;
# ./build next to the sources otherwise). Exit 77 marks a test as skipped.
set -eu

TEST_SUITE=cli
. "$(dirname "$0")/../common.sh"

# expect_fail STATUS 'first line of stderr' ferryctl-args...
# Runs ferryctl, which must exit with STATUS and print exactly that line first.
expect_fail() {
	want_status=$1
	want_msg=$2
	shift 2
	set +e
	"$FERRYCTL" "$@" >"$T/out" 2>"$T/err"
	got=$?
	set -e
	[ "$got" -eq "$want_status" ] ||
		fail "ferryctl $*: exit status $got, wanted $want_status; stderr: $(cat "$T/err")"
	first=$(head -n 1 "$T/err")
	[ "$first" = "$want_msg" ] ||
		fail "ferryctl $*: stderr
  got:    $first
  wanted: $want_msg"
}

# random_file PATH BYTES [SEED]: deterministic pseudo-random bytes.
random_file() {
	python3 -c '
import random, sys
r = random.Random(int(sys.argv[3]))
n = int(sys.argv[2])
with open(sys.argv[1], "wb") as f:
    while n > 0:
        k = min(n, 1 << 20)
        f.write(r.randbytes(k))
        n -= k
' "$1" "$2" "${3:-1}"
}

# A small tree: nested directories, an empty file, odd sizes.
make_tree() {
	mkdir -p "$1/a/b" "$1/empty-dir"
	random_file "$1/a/b/weights.bin" 3145745 1
	random_file "$1/a/tokenizer.json" 70001 2
	random_file "$1/config.json" 513 3
	: >"$1/empty"
}

# json_ok FILE: FILE holds one valid JSON document.
json_ok() {
	python3 -m json.tool "$1" >/dev/null || fail "$1 is not valid JSON: $(cat "$1")"
}
