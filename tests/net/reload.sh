# Live reconfiguration during a transfer: `ferryctl reload` (and SIGHUP)
# with a changed want list and download rate neither drops the connection
# nor restarts the fetch; the daemon says it took the new file, and that a
# second reload of the same file changed nothing; the model completes
# byte-identical with no byte fetched twice.
. "$FERRY_SRCDIR/tests/net/lib.sh"

MIB=1048576
net_init
make_model "$T/model" 8 21

node_make a
node_make b "models.want=llm" "peers.peer=$(addr_of a)" "limits.download_rate=8mbit"
publish a llm 1 "$T/model"
node_start a
node_start b

# The number of sessions b has opened so far (one debug line per peer coming up).
sessions() {
	grep -c "sched handle" "$T/b/log" || true
}

say "b fetches llm@1 at 8 Mbit/s"
wait_log b "fetching llm@1" 30
sleep 2
grep -q "model llm version 1 complete" "$T/b/log" && fail "b completed before the reload: the test proves nothing"
before=$(sessions)
[ "$before" -ge 1 ] || fail "b has no session with a"

say "ferryctl reload with another want line and 16mbit"
sed -i "s|^download_rate = .*|download_rate = 16mbit|" "$T/b/ferryd.conf"
sed -i "s|^want = llm$|want = llm\nwant = other-*|" "$T/b/ferryd.conf"
ctl --socket "$T/b/ferryd.sock" reload >"$T/out" 2>&1 || fail "reload failed: $(cat "$T/out")"
wait_log b "<5>config: configuration reloaded$" 10

say "SIGHUP with the same file: nothing changes"
lines=$(wc -l <"$T/b/log")
kill -HUP "$(cat "$T/b/pid")"
wait_log b "configuration reloaded: nothing changed" 10 "$lines"

say "the fetch goes on over the same session and completes"
wait_log b "model llm version 1 complete" 60
[ "$(sessions)" -eq "$before" ] || fail "b opened $(($(sessions) - before)) new sessions after the reload"
need=$(encoded_of b)
got=$(sed -n 's/.*model llm version 1 complete (\([0-9]*\) bytes.*/\1/p' "$T/b/log")
[ -n "$need" ] && [ -n "$got" ] || fail "no byte counts in b's log"
[ "$got" -le $((need + MIB)) ] || fail "b received $got bytes for a model of $need"
export_check b llm@1 "$T/model"
node_stop b
node_stop a
