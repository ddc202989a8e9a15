# Helpers shared by the sideload tests (sourced, not run).
#
# Each test works in its own temporary directory $T, removed on exit together
# with whatever it mounted, and runs the ferryctl of the build tree
# ($FERRY_BUILDDIR, set by `make check`; ./build next to the sources
# otherwise). Exit status 77 marks a test as skipped: the tests that mount
# file systems need root, loop devices and the file system's tools.
set -eu
# quickstart's ASan and distcheck stages skip whole suites through FERRY_SKIP
# (a list of suite names) to stay within their time budgets.
case " ${FERRY_SKIP:-} " in *" sideload "*) echo "skipped: FERRY_SKIP names the sideload suite"; exit 77 ;; esac

TEST_SUITE=sideload
. "$(dirname "$0")/../common.sh"

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

need_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root to mount file system images"
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || skip "needs $tool"
	done
}

# random_file PATH MIB SEED: deterministic incompressible bytes.
random_file() {
	python3 -c '
import random, sys
r = random.Random(int(sys.argv[3]))
with open(sys.argv[1], "wb") as f:
    for _ in range(int(sys.argv[2])):
        f.write(r.randbytes(1 << 20))
' "$1" "$2" "$3"
}

# make_model DIR MIB SEED: bf16 weights (compressible like real ones), random
# bytes, a small config and an empty file.
make_model() {
	mkdir -p "$1/weights"
	"$GEN_WEIGHTS" --dtype bf16 --size "$(($2 / 2))M" --seed "$3" "$1/weights/model.safetensors" \
		>/dev/null
	random_file "$1/weights/extra.bin" "$(($2 - $2 / 2))" "$3"
	printf '{"seed": %s}\n' "$3" >"$1/config.json"
	: >"$1/empty"
}

# HQ: a publisher key and a store that trusts it; CLINIC trusts it too.
setup_stores() {
	HQ=$T/hq
	CLINIC=$T/clinic
	ctl keygen --out "$T/pub.key" >"$T/keygen.out"
	PK=$(tail -n 1 "$T/keygen.out")
	mkdir -p "$CLINIC"
	echo "$PK" >"$CLINIC/trust"
}

publish() { # publish NAME VERSION DIR
	ctl --store "$HQ" publish --key "$T/pub.key" "$1" "$2" "$3" >/dev/null
}

# mount_image IMG DIR [OPTIONS]: loop-mount an image and unmount it on exit.
mount_image() {
	mkdir -p "$2"
	mount -o "loop${3:+,$3}" "$1" "$2"
	at_exit "umount '$2' 2>/dev/null"
}

# expect_status STATUS CMD...: run CMD (output in $T/out, $T/err), which must exit with STATUS.
expect_status() {
	want=$1
	shift
	set +e
	"$@" >"$T/out" 2>"$T/err"
	got=$?
	set -e
	[ "$got" -eq "$want" ] || fail "$*: exit status $got, wanted $want; stderr: $(cat "$T/err")"
}

# err_has TEXT: stderr of the last expect_status holds TEXT (a fixed string).
err_has() {
	grep -qF -- "$1" "$T/err" || fail "stderr lacks '$1':
$(cat "$T/err")"
}
