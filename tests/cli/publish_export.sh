#!/bin/sh
# keygen, publish, models, export, verify and gc end to end, on a store
# directory (--store), comparing exported files byte for byte.
. "$(dirname "$0")/lib.sh"

S=$T/state

# keygen: the key file is private, stdout's last line is the public key.
ctl keygen --out "$T/pub.key" >"$T/keygen.out"
pk=$(tail -n 1 "$T/keygen.out")
[ "${#pk}" -eq 44 ] || fail "keygen's last line is not a base64 key: $pk"
[ "$(stat -c %a "$T/pub.key")" = 600 ] || fail "the key file is not mode 0600"
ctl netkey --out "$T/net.key" >/dev/null
[ -s "$T/net.key" ] || fail "netkey wrote nothing"

make_tree "$T/v1"
ctl --store "$S" publish --key "$T/pub.key" demo 1 "$T/v1" --label "first cut" >"$T/pub1.out"
grep -q '^version: *1$' "$T/pub1.out" || fail "publish does not show the version: $(cat "$T/pub1.out")"
grep -q 'a/b/weights.bin' "$T/pub1.out" || fail "publish does not list the files"
# The first publish into a store records its publisher as trusted.
grep -qx "$pk" "$S/trust" || fail "the store's trust file does not hold the publisher"

# Version 2 changes one file; most of it is deduplicated.
cp -r "$T/v1" "$T/v2"
random_file "$T/v2/config.json" 600 4
# Global options may stand anywhere on the line.
ctl publish demo 2 "$T/v2" --key "$T/pub.key" --store "$S" >"$T/pub2.out"
grep -q '^deduplicated: *3.' "$T/pub2.out" ||
	fail "version 2 should deduplicate the 3 MiB file: $(cat "$T/pub2.out")"

ctl --store "$S" models >"$T/models.out"
[ "$(grep -c '^demo ' "$T/models.out")" -eq 2 ] || fail "models: $(cat "$T/models.out")"
grep -q '^NAME  *VERSION  *LABEL  *SIZE  *PRESENT  *ACTIVE  *PINNED$' "$T/models.out" ||
	fail "models has no header: $(cat "$T/models.out")"
grep -q '^demo  *1  *first cut .*100.0%' "$T/models.out" || fail "models: $(cat "$T/models.out")"

# export: newest by default, or the version named; byte-identical.
ctl --store "$S" export demo "$T/out2" >/dev/null
same_tree "$T/v2" "$T/out2"
[ -f "$T/out2/empty" ] && [ ! -s "$T/out2/empty" ] || fail "the empty file was not exported"
ctl --store "$S" export demo@1 "$T/out1" --sha256 >/dev/null
same_tree "$T/v1" "$T/out1"
cmp "$T/v1/config.json" "$T/out1/config.json"
[ -z "$(find "$T/out1" "$T/out2" -name '*.ferry-tmp')" ] || fail "temporary files left behind"
# Exporting over an earlier export replaces the files.
ctl --store "$S" export demo@2 "$T/out1" >/dev/null
cmp "$T/v2/config.json" "$T/out1/config.json"

ctl --store "$S" verify demo@1 >"$T/verify.out"
grep -q '^corrupt: *0$' "$T/verify.out" || fail "verify: $(cat "$T/verify.out")"

ctl --store "$S" gc >"$T/gc.out"
grep -q '^chunks freed: *0$' "$T/gc.out" || fail "gc freed chunks still in use: $(cat "$T/gc.out")"
ctl --store "$S" export demo@1 "$T/out1b" >/dev/null
same_tree "$T/v1" "$T/out1b"

# help comes from the command table.
ctl help >"$T/help.out"
for c in keygen netkey publish models export verify gc; do
	grep -q "^  $c " "$T/help.out" || fail "help does not list $c"
done
ctl help publish | grep -q '^usage: ferryctl .*publish --key KEYFILE NAME VERSION DIR' ||
	fail "help publish"
echo "ok"
