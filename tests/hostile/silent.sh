# A peer of the network completes the handshake, says it holds the whole
# model, then never answers anything (no chunk, no index piece, no PONG).
# The node must take what it asked of it to an honest peer (the 30 s index
# piece timeout, then the chunk stalls) and complete the model
# byte-identical within 45 s of the honest peer's arrival, before the dead
# timeout closes the silent peer; and it must close the silent peer as dead.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

hostile_setup 8
node_start b
rss_watch b

say "the silent peer announces everything first, so b asks it first"
evil_start evil b silent --store "$T/evil/state" --model llm --hold 100000
wait_log b "fetching the index of llm@1" 20
sleep 1
finish_before=$(date +%s)
say "the honest seed a arrives while the silent peer still holds b's requests"
node_start a
( wait_log b "model llm version 1 complete" 45 ) ||
	fail "b did not complete within 45 s of an honest peer's arrival: the silent peer kept its requests (when b asked and cancelled what: $T/evil.evil, kept with FERRY_NET_KEEP=1)"
say "b completed $(($(date +%s) - finish_before)) s after a arrived"
grep -q "dropped by the node" "$T/evil.evil" &&
	say "(the silent peer was already closed as dead by then)"
wait_evil evil "dropped by the node" 90
say "b closed the silent peer: $(grep "dropped by the node" "$T/evil.evil")"
kill "$(cat "$T/evil.evilpid")" 2>/dev/null || true
alive b
rss_check b
node_stop a
node_stop b
export_check b llm@1 "$T/model"
store_verify b
