# A peer of the network announces the model, then writes one byte every two
# seconds (answers, PONGs, everything), so the connection never looks dead.
# The node must let faster peers take its requests and complete the model
# byte-identical within 45 s of an honest peer's arrival (the index piece
# timeout is 30 s). A second hostile peer dribbles the handshake itself, one
# byte a second: the handshake deadline must close it.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

hostile_setup 8
node_start b
rss_watch b

say "the slow peer announces everything first, so b asks it first"
evil_start evil b slow --store "$T/evil/state" --model llm --interval 2000 --hold 100000
evil_start slowhs b slow --slow-hs --interval 1000 --hold 30000
wait_log b "fetching the index of llm@1" 20
sleep 1
t0=$(date +%s)
say "the honest seed a arrives while the slow peer holds b's requests"
node_start a
( wait_log b "model llm version 1 complete" 45 ) ||
	fail "b did not complete within 45 s of an honest peer's arrival: the slow peer kept its requests (when b asked and cancelled what: $T/evil.evil, kept with FERRY_NET_KEEP=1)"
say "b completed $(($(date +%s) - t0)) s after a arrived"
evil_wait slowhs
[ "$(evil_val slowhs up)" -eq 0 ] || fail "a handshake dribbled one byte a second completed"
[ "$(evil_val slowhs hs_closed)" -eq 1 ] || fail "b did not close the dribbled handshake"
say "the dribbled handshake: $(grep "handshake ended" "$T/slowhs.evil")"
kill "$(cat "$T/evil.evilpid")" 2>/dev/null || true
alive b
rss_check b
node_stop a
node_stop b
export_check b llm@1 "$T/model"
store_verify b
