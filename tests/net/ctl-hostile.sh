# Misbehaving control clients: garbage, an oversized length, a half-sent
# request, a client that never sends anything, a flood of connections, and a
# fetch --wait client killed mid-stream. The daemon answers or drops each one
# and keeps serving everyone else.
. "$FERRY_SRCDIR/tests/net/lib.sh"

net_init
make_model "$T/m1" 4 1
node_make a "models.want=*"
node_make b "models.want=" "peers.peer=$(addr_of a)" "limits.download_rate=4mbit"
publish a llm 1 "$T/m1"
node_start a
node_start b
SOCK="$T/b/ferryd.sock"

# raw HEX-BYTES: send them on a fresh connection; print the result code the
# daemon sends back ("eof" if it just hangs up).
raw() {
	python3 - "$SOCK" "$1" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(bytes.fromhex(sys.argv[2]))
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
if len(data) < 4:
    print("eof")
else:
    # {"t":3,"code":C,"msg":...}: the code is the signed integer after "code".
    body = data[4:]
    i = body.index(b"code") + 4
    b = body[i]
    if b < 0x80:
        code = b
    elif b >= 0xe0:
        code = b - 0x100
    elif b == 0xd1:
        code = struct.unpack(">h", body[i + 1:i + 3])[0]
    elif b == 0xd2:
        code = struct.unpack(">i", body[i + 1:i + 5])[0]
    else:
        code = "?"
    print(code)
PY
}

alive() {
	kill -0 "$(cat "$T/b/pid")" 2>/dev/null || fail "ferryd died after $1"
	ctl --socket "$SOCK" status >/dev/null || fail "status fails after $1"
}

say "an oversized length is refused before anything is allocated"
[ "$(raw 7fffffff)" = "-7" ] || fail "oversized length: $(raw 7fffffff)"   # FERRY_ETOOBIG = -E2BIG
alive "an oversized length"

say "garbage and malformed msgpack get a protocol error"
[ "$(raw 00000008c1c1676172626167)" = "-2008" ] || fail "garbage"        # FERRY_EPROTO
[ "$(raw 00000005dfffffffff)" = "-2008" ] || fail "a map longer than its bytes"
alive "garbage"

say "a request from a newer ferryctl is refused with a version error"
# {"t":1,"v":99,"cmd":"status","args":{}}
[ "$(raw 0000001884a17401a17663a3636d64a6737461747573a46172677380)" = "-2006" ] ||
	fail "version mismatch"
alive "a version mismatch"

say "a client that sends half a request and then nothing is timed out"
python3 - "$SOCK" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"\x00\x00")
time.sleep(30)
PY
slow=$!
alive "a half-sent request"

say "70 idle connections at once: the 65th and later are told to retry, others still served after"
python3 - "$SOCK" <<'PY' || fail "connection flood"
import socket, sys
socks = []
for i in range(70):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    socks.append(s)
busy = 0
for s in socks:
    s.settimeout(0.5)
    try:
        d = s.recv(4096)
        if b"try again" in d:
            busy += 1
    except socket.timeout:
        pass
# One slot is held by the half-sent request above.
sys.exit(0 if busy >= 6 else "only %d connections were told to retry" % busy)
PY
alive "a flood of connections"
kill "$slow" 2>/dev/null || true
wait "$slow" 2>/dev/null || true

say "a fetch --wait client killed mid-stream: the daemon stops streaming, the fetch goes on"
"$FERRYCTL" --socket "$SOCK" fetch llm@1 --wait >"$T/progress.txt" &
waiter=$!
sleep 1.5
[ -s "$T/progress.txt" ] || fail "no progress line before the kill"
kill -9 "$waiter"
wait "$waiter" 2>/dev/null || true
alive "a vanished fetch --wait client"
wait_log b "model llm version 1 complete" 60
ctl --socket "$SOCK" fetch llm@1 >"$T/out"
grep -q "llm@1 is complete" "$T/out" || fail "the fetch did not go on: $(cat "$T/out")"

node_stop b
node_stop a
