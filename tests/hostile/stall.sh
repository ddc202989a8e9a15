# A peer that stops sending in the middle of chunks: on its first
# connection it sends the first half of each chunk b asks for, then the
# connection ends; on its second it sends no chunk data at all, so the
# requests b resumed there from the halves stall once an honest peer a
# holds the model too. b must keep what it has of each chunk when it cancels
# them, and ask a only for the rest: the chunk bytes b received in all come
# to the model's encoded size (no half crosses twice), and the model is
# byte-identical.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

# A small model: b's first window of requests covers most of it, so on the
# second connection b asks the stalling peer again for the chunks it has
# half of.
hostile_setup 1
node_start b


say "the stalling peer sends half of each chunk, reconnects, then sends no chunk data"
evil_start evil b stall --store "$T/evil/state" --model llm --hold 4000 --repeat 2 --gap 200
wait_evil evil "conn 1: CHUNK_REQ [0-9]* for chunk [0-9a-f]* at [1-9]" 30
half=$(status_of b bytes_received)
say "b asked it for the rest of a chunk it has half of ($half chunk bytes in); the honest seed a arrives"
node_start a
( wait_log b "model llm version 1 complete" 60 ) ||
	fail "b did not complete within 60 s of an honest peer's arrival (what b asked of the stalling peer: $T/evil.evil, kept with FERRY_NET_KEEP=1)"
kill "$(cat "$T/evil.evilpid")" 2>/dev/null || true

resume_counters b
say "encoded $need bytes; b received $got chunk bytes, $half from the stalling peer; $resumed resumed"
[ "$half" -ge 61440 ] || fail "the stalling peer sent b less than one frame: the test proves nothing"
[ "$resumed" -ge "$half" ] ||
	fail "b resumed $resumed bytes, less than the $half the stalling peer sent"
[ "$got" -le $((need + 61440)) ] ||
	fail "b received $got chunk bytes for $need encoded: what arrived of stalled requests was fetched again"
alive b
node_stop a
node_stop b
export_check b llm@1 "$T/model"
store_verify b
