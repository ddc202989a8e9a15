# Crash loop: kill -9 the receiving ferryd at random moments of a fetch, 50
# times in a row (each restart resumes from its store; a kill may land
# before the daemon is even ready). Then LMDB's mdb_stat opens the store,
# every stored chunk and manifest verifies, and the fetch completes
# byte-identical. The same during a sideload when this ferryctl has one.
# HOSTILE_KILLS changes the count.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

KILLS=${HOSTILE_KILLS:-50}

# crash_start NODE: start ferryd without waiting for it to be ready.
crash_start() {
	"$FERRYD" -c "$T/$1/ferryd.conf" >>"$T/$1/log" 2>&1 &
	echo $! >"$T/$1/pid"
}

# A random pause of $1..$2 ms.
pause_ms() {
	ms=$(shuf -i "$1-$2" -n 1)
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
}

# crash_kill NODE: the daemon must still be running (it may not exit by
# itself on a store a kill left behind), then SIGKILL it.
crash_kill() {
	kill -0 "$(cat "$T/$1/pid")" 2>/dev/null ||
		fail "ferryd $1 exited by itself after restart $i: $(tail -n 3 "$T/$1/log")"
	node_kill "$1"
}

net_init
make_model "$T/model" 64 9
node_make a "models.want=*"
# b dials a, so every restart connects at once (a would back off redialing b).
node_make b "models.want=*" "node.min_free_space=0" "peers.peer=$(addr_of a)" \
	"limits.download_rate=8mbit"
publish a llm 1 "$T/model"
node_start a

say "fetch: kill -9 b $KILLS times at random moments"
t0=$(date +%s)
i=0
while [ "$i" -lt "$KILLS" ]; do
	i=$((i + 1))
	crash_start b
	pause_ms 100 1500
	crash_kill b
	if [ $((i % 10)) -eq 0 ]; then
		store_verify b
	fi
done
say "$KILLS kills in $(($(date +%s) - t0)) s"
done_early=false
if grep -q "model llm version 1 complete" "$T/b/log"; then
	done_early=true
	say "NOTE: b completed the model before the last kill: later kills hit an idle node"
fi
store_verify b

say "b restarts without the download limit and completes"
sed -i '/^download_rate/d' "$T/b/ferryd.conf"
lines=$(wc -l <"$T/b/log")
node_start b
$done_early || wait_log b "model llm version 1 complete" 60 "$lines"
node_stop b
node_stop a
export_check b llm@1 "$T/model"
store_verify b
ctl --store "$T/b/state" --trust "$PUB" verify llm@1 >/dev/null 2>"$T/err" ||
	fail "ferryctl verify llm@1 on b's store: $(cat "$T/err")"

if ! has_ctl sideload || ! has_ctl bundle; then
	say "NOTE: this ferryctl has no sideload/bundle commands: the sideload crash loop did not run"
	exit 0
fi
ctl --store "$T/a/state" --trust "$PUB" bundle create --out "$T/bundle" llm@1 >/dev/null \
	2>"$T/err" || fail "bundle create: $(cat "$T/err")"
node_make s "models.want=*" "node.min_free_space=0"
mkdir -p "$T/s/state"
if ! ctl help 2>&1 | grep -q '^  sideload .*--store only'; then
	say "sideload through ferryd: kill -9 the importing daemon $KILLS times at random moments"
	i=0
	while [ "$i" -lt "$KILLS" ]; do
		i=$((i + 1))
		crash_start s
		# The last kill left the socket file behind: wait until ferryd answers on it.
		n=0
		until ctl --socket "$T/s/ferryd.sock" status >/dev/null 2>&1 || [ "$n" -ge 250 ]; do
			sleep 0.02
			n=$((n + 1))
		done
		ctl --socket "$T/s/ferryd.sock" sideload "$T/bundle" >/dev/null 2>&1 &
		side=$!
		pause_ms 0 800
		crash_kill s
		wait "$side" 2>/dev/null || true
	done
	store_verify s
	node_start s
	ctl --socket "$T/s/ferryd.sock" sideload "$T/bundle" >/dev/null 2>"$T/err" ||
		fail "the last sideload failed: $(cat "$T/err")"
	node_stop s
else
	# While sideload is a --store command the importer is ferryctl itself, the
	# store's writer. An import that finishes between two kills starts a new round on
	# an empty store (after checking it), until KILLS kills have hit imports.
	say "sideload with --store: kill -9 the importing ferryctl at random moments, $KILLS times"
	landed=0
	rounds=1
	tries=0
	while [ "$landed" -lt "$KILLS" ]; do
		tries=$((tries + 1))
		[ "$tries" -le $((KILLS * 4)) ] || fail "only $landed of $tries kills hit a running import"
		"$FERRYCTL" --store "$T/s/state" --trust "$PUB" sideload "$T/bundle" >/dev/null 2>&1 &
		side=$!
		pause_ms 0 250
		if kill -9 "$side" 2>/dev/null; then
			landed=$((landed + 1))
			wait "$side" 2>/dev/null || true
			continue
		fi
		wait "$side" || fail "a sideload after a kill failed (status $?)"
		store_verify s
		rm -rf "$T/s/state"
		mkdir -p "$T/s/state"
		rounds=$((rounds + 1))
	done
	say "$landed kills hit running imports, over $rounds rounds on a fresh store"
	store_verify s
	ctl --store "$T/s/state" --trust "$PUB" sideload "$T/bundle" >/dev/null 2>"$T/err" ||
		fail "the last sideload failed: $(cat "$T/err")"
fi
export_check s llm@1 "$T/model"
store_verify s
