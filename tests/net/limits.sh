#!/bin/sh
# ferryctl limit through a real daemon: the limits are listed with their
# source (text and --json), changed at run time, shown by status; a bad name
# or rate is refused with one sentence and changes nothing; a reload keeps an
# override and applies the rest of the new [limits], including a wan_window
# in force; `limit NAME config` drops an override; a restart forgets them.
. "$(dirname "$0")/lib.sh"

net_init
node_make a limits.wan_download_rate=2mbit limits.upload_rate=8mbit
node_start a
S="--socket $T/a/ferryd.sock"

# limit_is NAME RATE_BPS SOURCE CONFIG_BPS: what `ferryctl --json limit` says of NAME.
limit_is() {
	ctl $S --json limit >"$T/limits.json" || fail "limit --json failed"
	python3 - "$T/limits.json" "$@" <<'EOF' || fail "limit $2: $(cat "$T/limits.json")"
import json, sys
doc = json.load(open(sys.argv[1]))
name, rate, source, config = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
rows = [r for r in doc["limits"] if r["name"] == name]
assert len(rows) == 1, "no row " + name
r = rows[0]
assert (r["rate_bps"], r["source"], r["config_bps"]) == (rate, source, config), r
EOF
}

say "the configured limits, as text and JSON"
ctl $S limit >"$T/out" || fail "limit failed"
head -n 1 "$T/out" | grep -q "^NAME *RATE *SOURCE *CONFIG$" || fail "no table header: $(cat "$T/out")"
grep -q "^wan_download *2.0 Mbit/s *config *2.0 Mbit/s$" "$T/out" || fail "wan_download row: $(cat "$T/out")"
grep -q "^download *unlimited *config *unlimited$" "$T/out" || fail "download row: $(cat "$T/out")"
[ "$(wc -l <"$T/out")" -eq 7 ] || fail "not six limits: $(cat "$T/out")"
limit_is upload 8000000 config 8000000
limit_is lan_upload 0 config 0

say "changed at run time; status shows the limits in force"
ctl $S limit wan_download 4mbit >"$T/out" || fail "limit wan_download 4mbit failed"
grep -q "wan_download is 4.0 Mbit/s until ferryd restarts" "$T/out" || fail "limit note: $(cat "$T/out")"
limit_is wan_download 4000000 runtime 2000000
ctl $S limit lan_upload 500kbit >/dev/null || fail "limit lan_upload failed"
limit_is lan_upload 500000 runtime 0
ctl $S status >"$T/out" || fail "status failed"
grep -q "^limits: *upload 8.0 Mbit/s, wan_download 4.0 Mbit/s, lan_upload 500.0 kbit/s$" "$T/out" ||
	fail "status limits: $(grep limits "$T/out")"
ctl $S --json status >"$T/out.json" || fail "status --json failed"
python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["limit_wan_download_bps"] == 4000000 and d["limit_upload_bps"] == 8000000, d
assert d["limit_download_bps"] == 0 and d["limit_lan_upload_bps"] == 500000, d
' "$T/out.json" || fail "status --json limits: $(cat "$T/out.json")"
ctl $S metrics >"$T/out" || fail "metrics failed"
grep -q '^ferry_rate_limit_bits_per_second{limit="wan_download"} 4000000$' "$T/out" &&
	grep -q '^ferry_rate_limit_bits_per_second{limit="download"} 0$' "$T/out" ||
	fail "metrics limits: $(grep rate_limit "$T/out")"
grep -q "limit wan_download requested by uid $(id -u)" "$T/a/log" || fail "the change was not logged"
grep -q "wan_download limit is now 4.0 Mbit/s (set by ferryctl until ferryd restarts)" "$T/a/log" ||
	fail "the new rate was not logged"

say "a bad name or rate is one sentence, and changes nothing"
status=0
ctl $S limit wan_dl 1mbit >"$T/out" 2>"$T/err" || status=$?
[ "$status" -eq 1 ] || fail "a bad name exited $status"
[ "$(wc -l <"$T/err")" -eq 1 ] && grep -q "^ferryctl: limit: 'wan_dl' is not a rate limit (download, upload, wan_download, wan_upload, lan_download or lan_upload)$" "$T/err" ||
	fail "bad name: $(cat "$T/err")"
status=0
ctl $S limit upload fast >"$T/out" 2>"$T/err" || status=$?
[ "$status" -eq 1 ] || fail "a bad rate exited $status"
[ "$(wc -l <"$T/err")" -eq 1 ] && grep -q "^ferryctl: limit: 'fast' is not a rate (examples: 500kbit, 4mbit, 1gbit; 0 = unlimited; config = as ferryd.conf says)$" "$T/err" ||
	fail "bad rate: $(cat "$T/err")"
status=0
ctl $S limit upload 2tbit 2>"$T/err" || status=$?
[ "$status" -eq 1 ] && grep -q "above the limit" "$T/err" || fail "2tbit: $status $(cat "$T/err")"
status=0
ctl $S limit upload 2>"$T/err" || status=$?
[ "$status" -eq 2 ] && grep -q "missing RATE after upload" "$T/err" || fail "no rate: $status $(cat "$T/err")"
limit_is upload 8000000 config 8000000
kill -0 "$(cat "$T/a/pid")" || fail "ferryd died on bad input"

say "reload: the override stays, the rest of [limits] and a wan_window take effect"
lines=$(wc -l <"$T/a/log")
sed -i -e 's/^wan_download_rate = .*/wan_download_rate = 3mbit/' -e 's/^upload_rate = .*/upload_rate = 1mbit/' \
	"$T/a/ferryd.conf"
echo "wan_window = daily 00:00-24:00 5mbit" >>"$T/a/ferryd.conf"
kill -HUP "$(cat "$T/a/pid")"
wait_log a "configuration reloaded" 10 "$lines"
limit_is wan_download 4000000 runtime 3000000
limit_is upload 1000000 config 1000000
limit_is wan_upload 5000000 window 0
wait_log a "wan_download stays at 4.0 Mbit/s (set by ferryctl limit) until ferryd restarts" 5 "$lines"
wait_log a "a wan_window is in force: WAN limit 5.0 Mbit/s each way" 5 "$lines"

say "limit NAME config drops the override: the window is in force"
ctl $S limit wan_download config >"$T/out" || fail "limit wan_download config failed"
grep -q "wan_download is 5.0 Mbit/s again, as the wan_window in force says" "$T/out" ||
	fail "config note: $(cat "$T/out")"
limit_is wan_download 5000000 window 3000000

say "a window of 0 lifts the WAN limits; without the window the configured ones are back"
lines=$(wc -l <"$T/a/log")
sed -i 's/^wan_window = .*/wan_window = daily 00:00-24:00 0/' "$T/a/ferryd.conf"
kill -HUP "$(cat "$T/a/pid")"
wait_log a "configuration reloaded" 10 "$lines"
limit_is wan_download 0 window 3000000
lines=$(wc -l <"$T/a/log")
sed -i '/^wan_window = /d' "$T/a/ferryd.conf"
kill -HUP "$(cat "$T/a/pid")"
wait_log a "configuration reloaded" 10 "$lines"
limit_is wan_download 3000000 config 3000000
wait_log a "no wan_window is in force: WAN limits 3.0 Mbit/s down, unlimited up" 5 "$lines"

say "a change reaches transfers already waiting for the limiter"
# b fetches from a at 16 kbit/s: from its second 64 KiB frame on, its reads
# pause for 32 s or more. Lifting the limit must end that wait at once, not
# when the pause computed at the old rate runs out.
make_model "$T/m1" 2 1
node_make b "models.want=" "peers.peer=$(addr_of a)" "limits.download_rate=16kbit"
node_stop a
publish a llm 1 "$T/m1"
node_start a
node_start b
B="--socket $T/b/ferryd.sock"
ctl $B fetch llm@1 >/dev/null || fail "fetch on b failed"
deadline=$(($(date +%s) + 20))
until [ "$(ctl $B --json status | python3 -c 'import json, sys; print(json.load(sys.stdin)["bytes_received"])')" -gt 65536 ]; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "b received no second frame in 20 s"
	sleep 0.2
done
ctl $B limit download 0 >/dev/null || fail "limit download 0 on b failed"
timeout 20 "$FERRYCTL" $B fetch llm@1 --wait >/dev/null ||
	fail "b was still waiting 20 s after its limit was lifted"
node_stop b

say "a wan_window opens at its boundary, in ferryd's local time"
# A time zone a few seconds east of UTC puts the start of a local minute 8 s
# ahead; a window from that minute on must be in force within a second or two
# of it, without a reload (the one-second tick re-reads the schedule).
eval "$(python3 -c '
import time
e = int(time.time()) + 8
off = (60 - e % 60) % 60
start = time.strftime("%H:%M", time.gmtime(e + off))
end = time.strftime("%H:%M", time.gmtime(e + off + 120)).replace("00:00", "24:00", 1)
if end < start:
    end = "24:00"
print("tz=XST-0:00:%02d win=\"daily %s-%s 3mbit\" at=%d" % (off, start, end, e))
')"
node_make c "limits.wan_download_rate=1mbit" "limits.wan_window=$win"
node_start c TZ="$tz"
C="--socket $T/c/ferryd.sock"
ctl $C --json limit >"$T/limits.json" || fail "limit --json on c failed"
if [ "$(date +%s)" -lt $((at - 1)) ]; then
	grep -q '"source": "window"' "$T/limits.json" && fail "the window ($win, TZ $tz) was in force early"
fi
until ctl $C --json limit | grep -q '"source": "window"'; do
	[ "$(date +%s)" -lt $((at + 5)) ] || fail "the window $win (TZ $tz) was not in force 5 s after its start"
	sleep 0.2
done
S_A=$S
S=$C
limit_is wan_download 3000000 window 1000000
S=$S_A
grep -q "a wan_window is in force: WAN limit 3.0 Mbit/s each way" "$T/c/log" || fail "c did not log the window"
node_stop c

say "a restart forgets the overrides"
ctl $S limit download 6mbit >/dev/null || fail "limit download failed"
limit_is download 6000000 runtime 0
node_stop a
node_start a
limit_is download 0 config 0
limit_is lan_upload 0 config 0
limit_is wan_download 3000000 config 3000000
say "ok"
