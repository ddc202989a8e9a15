# What stops ferryd from starting is fatal, said in one line, and quick:
# a missing network key file (named, with how to make one), a store held by
# another ferryd, a peer port in use. None of them leaves a daemon behind.
. "$FERRY_SRCDIR/tests/net/lib.sh"

net_init
node_make a
node_start a

# expect_start_failure NAME REGEX: ferryd on NAME's config exits 1 within 10 s, logging REGEX.
expect_start_failure() {
	status=0
	timeout 10 "$FERRYD" -c "$T/$1/ferryd.conf" >"$T/out" 2>"$T/err" || status=$?
	[ "$status" -eq 1 ] || fail "ferryd on $1's config: exit status $status, wanted 1: $(cat "$T/err")"
	grep -q -- "$2" "$T/err" || fail "ferryd on $1's config did not log '$2': $(cat "$T/err")"
}

say "no network key file"
NETKEY_FILE="$T/missing.key" node_make nokey
expect_start_failure nokey "<3>main: network key file $T/missing.key does not exist.*ferryctl netkey --out $T/missing.key"

say "the store of a running ferryd"
mkdir -p "$T/second"
sed "s|^listen = .*|listen = off|" "$T/a/ferryd.conf" >"$T/second/ferryd.conf"
expect_start_failure second "<3>main: $T/a/state is in use by another process"

say "a peer port in use"
node_make busy
sed -i "s|^listen = .*|listen = 127.0.0.1:$(cat "$T/a/port")|" "$T/busy/ferryd.conf"
expect_start_failure busy "<3>main: cannot listen on 127.0.0.1:$(cat "$T/a/port")"

kill -0 "$(cat "$T/a/pid")" || fail "the running daemon died"
node_stop a
