# The serving daemon killed in the middle of chunks, three times: the
# receiver keeps what arrived of the chunk in flight and, once the server is
# back, asks for the rest of it only (CHUNK_REQ offset). Checked from b's own
# counters: some bytes were resumed, and the chunk bytes b received in all
# come to the model's encoded size (there is no other source: nothing is
# raced or fetched twice), to within one 60 KiB frame per interruption.
. "$FERRY_SRCDIR/tests/net/lib.sh"

MIB=1048576
net_init
make_model "$T/model" 16 5

# a sends at the rate b reads: with b's limit alone, a filled the sockets'
# buffers ahead of b, and a kill that reset the connection took what b had
# not read yet, often the whole partial chunk (no resume in one run of eight).
node_make a "models.want=*" "limits.upload_rate=4mbit"
node_make b "models.want=*" "peers.peer=$(addr_of a)" "limits.download_rate=4mbit"
publish a llm 1 "$T/model"
node_start a
node_start b


for round in 1 2 3; do
	target=$((round * 3 * MIB))
	deadline=$(($(date +%s) + 60))
	while [ "$(status_of b bytes_received)" -lt "$target" ]; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "b received less than $target bytes in 60 s"
		sleep 0.1
	done
	grep -q "model llm version 1 complete" "$T/b/log" &&
		fail "b completed before interruption $round: the test proves nothing"
	say "round $round: b has received $(status_of b bytes_received) bytes; kill -9 a, start it again"
	node_kill a
	node_start a
done
wait_log b "model llm version 1 complete" 90
export_check b llm@1 "$T/model"

resume_counters b
say "encoded $need bytes; b received $got chunk bytes, $resumed of them after a resume"
[ "$resumed" -gt 0 ] || fail "no partly received chunk was resumed across three kills of its server"
[ "$got" -le $((need + 3 * 61440)) ] ||
	fail "b received $got chunk bytes for $need encoded: partly received chunks were fetched again"
node_stop b
node_stop a
