# A partial bundle plus a peer completes the model (issue 5): the bundle
# written at hq lost its last pack on the way (a full drive, a copy cut
# short). The clinic node imports what is there through its daemon:
# `ferryctl sideload` exits 1 and reports the missing chunks; the model is
# not complete and not active. Once hq is reachable, the clinic node fetches
# only what the bundle lacked and completes byte-identical.
. "$FERRY_SRCDIR/tests/net/lib.sh"

MIB=1048576
net_init
make_model "$T/model" 8 6

node_make hq
node_make s "models.want=*" "peers.peer=$(addr_of hq)"
publish hq llm 1 "$T/model"
ctl --store "$T/hq/state" --trust "$PUB" bundle create --out "$T/drive" --pack-size 2M llm@1 \
	>/dev/null 2>"$T/err" || fail "bundle create: $(cat "$T/err")"
last=$(ls "$T/drive/ferry-bundle/" | grep '^pack-.*\.dat$' | sort | tail -n 1)
[ -n "$last" ] && [ "$(ls "$T/drive/ferry-bundle/" | grep -c '^pack-.*\.dat$')" -ge 2 ] ||
	fail "the bundle has fewer than two packs: $(ls "$T/drive/ferry-bundle/")"
lost=$(stat -c %s "$T/drive/ferry-bundle/$last")
rm "$T/drive/ferry-bundle/$last"
say "the bundle lost $last ($lost bytes)"

say "s sideloads the partial bundle while hq is down"
node_start s
status=0
ctl --socket "$T/s/ferryd.sock" sideload "$T/drive" >"$T/out" 2>"$T/err" || status=$?
[ "$status" -eq 1 ] || fail "sideload of a partial bundle exited $status: $(cat "$T/out" "$T/err")"
grep -q "$last" "$T/out" "$T/err" || fail "the report does not name the missing $last: $(cat "$T/out" "$T/err")"
grep -q "^chunks imported: *[1-9]" "$T/out" || fail "nothing imported: $(cat "$T/out")"
grep -q "model llm version 1 complete" "$T/s/log" && fail "s completed llm@1 from a partial bundle"
[ ! -e "$T/s/state/models/llm/current" ] || fail "s activated an incomplete llm@1"

say "hq comes up: s fetches what the bundle lacked and completes"
node_start hq
wait_log s "model llm version 1 complete" 90
wait_log s "llm: version 1 is active" 30
got=$(sed -n 's/.*model llm version 1 complete (\([0-9]*\) bytes.*/\1/p' "$T/s/log")
[ -n "$got" ] || fail "no byte count in s's completion line"
[ "$got" -le $((lost + MIB)) ] ||
	fail "s received $got bytes from hq, more than the $lost bytes the bundle lacked + 1 MiB"
say "s received $got bytes from hq (the lost pack held $lost)"
node_stop s
node_stop hq
export_check s llm@1 "$T/model"
echo ok
