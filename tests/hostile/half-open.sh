# Hundreds of TCP connections that never finish handshake message 1 (half
# send nothing, half 30 bytes of a genuine one), three rounds of 300. The
# node must answer none of them, close those over the cap at once and the
# rest at the handshake deadline, keep its control socket answering, stay up
# with bounded memory, and complete the model once the honest seed gets in.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

hostile_setup 8
node_start b
rss_watch b

say "3 rounds of 300 half-open connections against b"
evil_start evil b half-open --count 300 --hold 12000 --repeat 3 --gap 0
sleep 2
if has_ctl status; then
	ctl --socket "$T/b/ferryd.sock" status >/dev/null ||
		fail "b's control socket did not answer during the attack"
fi
say "the honest seed a dials b during the attack"
node_start a
evil_wait evil
[ "$(evil_val evil ho_answered)" -eq 0 ] || fail "b answered a half-open connection"
[ "$(evil_val evil ho_open)" -eq 0 ] ||
	fail "$(evil_val evil ho_open) half-open connections were still open after 12 s"
# ferryd runs with peer debug messages: each connection over the cap is logged.
capped=$(grep -c "connections in their handshake: closing a new one" "$T/b/log" || true)
say "closed over the cap: $capped (the hostile peer saw $(evil_val evil ho_closed_fast) closed within 1 s, $(evil_val evil ho_closed_deadline) later)"
[ "$capped" -ge 600 ] || fail "b closed only $capped of 900 half-open connections for its cap"
alive b
wait_log b "model llm version 1 complete" 60
rss_check b
node_stop a
node_stop b
export_check b llm@1 "$T/model"
store_verify b
