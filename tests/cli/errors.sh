#!/bin/sh
# Exit statuses and the exact sentences of ferryctl's usage and operator errors.
. "$(dirname "$0")/lib.sh"

S=$T/state
ctl keygen --out "$T/a.key" >/dev/null
pkb=$(ctl keygen --out "$T/b.key" | tail -n 1)
make_tree "$T/src"

# Usage errors: exit 2, the problem, then the command's usage line.
expect_fail 2 "ferryctl: publish: missing VERSION" --store "$S" publish --key "$T/a.key" demo
[ "$(sed -n 2p "$T/err")" = "usage: ferryctl [--socket PATH | --store DIR] [--json] publish --key KEYFILE NAME VERSION DIR [--label L]" ] ||
	fail "no usage line: $(cat "$T/err")"
expect_fail 2 "ferryctl: publish: missing --key KEYFILE" --store "$S" publish demo 1 "$T/src"
expect_fail 2 "ferryctl: publish: VERSION 'x1' is not a whole number of 1 or more" \
	--store "$S" publish --key "$T/a.key" demo x1 "$T/src"
expect_fail 2 "ferryctl: unknown command 'frobnicate'" frobnicate
expect_fail 2 "ferryctl: export: unknown option '--bogus'" --store "$S" export demo "$T/o" --bogus
expect_fail 2 "ferryctl: export: unexpected argument 'extra'" --store "$S" export demo "$T/o" extra
expect_fail 2 "ferryctl: keygen: missing --out FILE" keygen
expect_fail 2 "ferryctl: no command given" --store "$S"

# Without --store, commands go to the daemon; none runs here.
expect_fail 1 "ferryctl: models: cannot connect to $T/none.sock: No such file or directory — is ferryd running?" \
	--socket "$T/none.sock" models
# A daemon-only command has no --store form; gc has both, and without --store asks the daemon.
expect_fail 2 "ferryctl: status: it asks a running ferryd and has no --store form" --store "$S" status
expect_fail 2 "ferryctl: metrics: it asks a running ferryd and has no --store form" --store "$S" metrics
expect_fail 1 "ferryctl: gc: cannot connect to $T/none.sock: No such file or directory — is ferryd running?" \
	--socket "$T/none.sock" gc

# keygen never overwrites a key.
expect_fail 1 "ferryctl: keygen: $T/a.key: already exists (a key file is never overwritten)" \
	keygen --out "$T/a.key"

# The source directory must exist.
expect_fail 1 "ferryctl: publish: cannot open the source directory $T/nope: No such file or directory" \
	--store "$S" publish --key "$T/a.key" demo 1 "$T/nope"

# A symlink in the source is refused, named, and nothing is published.
ln -s weights.bin "$T/src/a/b/link"
expect_fail 1 "ferryctl: publish: a/b/link: is a symbolic link; publish takes only regular files and directories" \
	--store "$S" publish --key "$T/a.key" demo 1 "$T/src"
rm "$T/src/a/b/link"
mkfifo "$T/src/a/pipe"
expect_fail 1 "ferryctl: publish: a/pipe: is a fifo, not a regular file or directory" \
	--store "$S" publish --key "$T/a.key" demo 1 "$T/src"
rm "$T/src/a/pipe"

ctl --store "$S" publish --key "$T/a.key" demo 2 "$T/src" >/dev/null

# Version numbers only go up.
expect_fail 1 "ferryctl: publish: model 'demo' is already at version 2; publish a version above it" \
	--store "$S" publish --key "$T/a.key" demo 2 "$T/src"
expect_fail 1 "ferryctl: publish: model 'demo' is already at version 2; publish a version above it" \
	--store "$S" publish --key "$T/a.key" demo 1 "$T/src"

# A second publisher is refused until the store trusts it.
expect_fail 1 "ferryctl: publish: publisher key $pkb is not trusted by the store in $S: add it to $S/trust or pass --trust $pkb" \
	--store "$S" publish --key "$T/b.key" other 1 "$T/src"
ctl --store "$S" publish --key "$T/b.key" other 1 "$T/src" --trust "$pkb" >/dev/null
# ...and from then on the store trusts it without --trust.
ctl --store "$S" export other "$T/out-other" >/dev/null
same_tree "$T/src" "$T/out-other"

# Unknown models and versions are named.
set +e
ctl --store "$S" export nosuch "$T/o" 2>"$T/err"
st=$?
set -e
[ "$st" -eq 1 ] && grep -q "^ferryctl: export: .*'nosuch'" "$T/err" ||
	fail "export of an unknown model: exit $st, $(cat "$T/err")"

# A store locked by another process (a running ferryd) is not written.
flock "$S/lock" sleep 30 &
locker=$!
at_exit "kill $locker 2>/dev/null"
sleep 0.3
expect_fail 1 "ferryctl: publish: the store in $S is locked by another process (a running ferryd or ferryctl); try again once it has stopped" \
	--store "$S" publish --key "$T/a.key" demo 3 "$T/src"
expect_fail 1 "ferryctl: gc: the store in $S is locked by another process (a running ferryd or ferryctl); try again once it has stopped" \
	--store "$S" gc
# Reading needs no lock.
ctl --store "$S" models >/dev/null
kill "$locker"
wait "$locker" 2>/dev/null || true

# A corrupt chunk: flip a byte of the file's data inside the store's data file.
python3 - "$S/store/data.mdb" "$T/src/a/b/weights.bin" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
src = open(sys.argv[2], "rb").read()
probe = src[2000000:2000064]
i = data.find(probe)
assert i >= 0, "the chunk's bytes are not in the store file"
data[i] ^= 0xff
open(sys.argv[1], "r+b").write(data)
PY
set +e
ctl --store "$S" verify demo >"$T/verify.out" 2>"$T/verify.err"
st=$?
set -e
[ "$st" -eq 1 ] || fail "verify of a corrupt version exited $st"
grep -q '^a/b/weights.bin  *[0-9][0-9]*  *[0-9a-f]\{64\}  *corrupt' "$T/verify.out" ||
	fail "verify does not name the file and offset: $(cat "$T/verify.out")"
off=$(awk '$1 == "a/b/weights.bin" { print $2 }' "$T/verify.out")
id=$(awk '$1 == "a/b/weights.bin" { print substr($3, 1, 12) }' "$T/verify.out")
expect_fail 1 "ferryctl: export: a/b/weights.bin: chunk $id at offset $off is corrupt in the store" \
	--store "$S" export demo "$T/out-bad"
[ ! -e "$T/out-bad/a/b/weights.bin" ] || fail "a corrupt file was exported under its name"
[ -z "$(find "$T/out-bad" -name '*.ferry-tmp')" ] || fail "a temporary file was left behind"
echo "ok"
