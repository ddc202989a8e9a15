# What the ferryctl test suites share (sourced by tests/cli/lib.sh and
# tests/sideload/lib.sh before their own helpers, not run).
#
# Set TEST_SUITE (a word) before sourcing. The test then works in its own
# temporary directory $T (ferry-$TEST_SUITE-XXXXXX under TMPDIR, default
# /tmp), removed on exit after the commands registered with at_exit, and
# runs the programs of the build tree ($FERRY_BUILDDIR, set by `make check`;
# ./build next to the sources otherwise).

: "${FERRY_BUILDDIR:=$(cd "$(dirname "$0")/../.." && pwd)/build}"
FERRYCTL=$FERRY_BUILDDIR/ferryctl
GEN_WEIGHTS=$FERRY_BUILDDIR/bench/gen_weights
T=$(mktemp -d "${TMPDIR:-/tmp}/ferry-$TEST_SUITE-XXXXXX")
CLEANUP=""

cleanup() {
	status=$?
	set +e
	eval "$CLEANUP"
	rm -rf "$T"
	exit "$status"
}
trap cleanup EXIT INT TERM

# Run CMD on exit (before $T is removed); the last registered runs first.
at_exit() {
	CLEANUP="$1; $CLEANUP"
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

ctl() {
	"$FERRYCTL" "$@"
}

# same_tree A B: every regular file of A is in B with the same bytes.
same_tree() {
	(cd "$1" && find . -type f) | while read -r f; do
		cmp "$1/$f" "$2/$f" || fail "$2/$f differs from $1/$f"
	done
}
