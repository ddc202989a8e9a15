# Crash loop during a sideload through ferryd (issues 5 and 7): kill -9 the
# importing daemon at a random moment of the import, KILLS times (each kill
# lands after the daemon opened a pack of the bundle and before it logged
# the import's end; an import that finished first does not count, and the store starts
# over empty so that later kills still meet an import). Then LMDB's mdb_stat
# opens the store, every stored chunk and manifest verifies, a new sideload
# of the same bundle completes and activates the model, and the export is
# byte-identical. HOSTILE_KILLS changes the count.
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

KILLS=${HOSTILE_KILLS:-50}

# A random pause of $1..$2 ms.
pause_ms() {
	ms=$(shuf -i "$1-$2" -n 1)
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
}

net_init
make_model "$T/model" 96 4
node_make hq
publish hq llm 1 "$T/model"
ctl --store "$T/hq/state" --trust "$PUB" bundle create --out "$T/drive" --pack-size 8M llm@1 \
	>/dev/null 2>"$T/err" || fail "bundle create: $(cat "$T/err")"
node_make s "models.want=*" "node.min_free_space=0"
touch "$T/s/log"

say "kill -9 the importing ferryd $KILLS times at random moments of the import"
hits=0
tries=0
rounds=1
while [ "$hits" -lt "$KILLS" ]; do
	tries=$((tries + 1))
	[ "$tries" -le $((KILLS * 4)) ] || fail "only $hits of $tries kills hit a running import"
	lines=$(wc -l <"$T/s/log")
	node_start s
	ctl --socket "$T/s/ferryd.sock" sideload "$T/drive" >/dev/null 2>&1 &
	side=$!
	# The import has begun once ferryd holds a pack of the bundle open (a
	# tight loop: the log, polled, would be seen too late on a fast disk).
	pid=$(cat "$T/s/pid")
	n=0
	until ls -l "/proc/$pid/fd" 2>/dev/null | grep -q 'ferry-bundle/pack-'; do
		n=$((n + 1))
		[ "$n" -lt 20000 ] || break
	done
	pause_ms 0 150
	node_kill s
	wait "$side" 2>/dev/null || true
	if tail -n +"$((lines + 1))" "$T/s/log" | grep -q "sideload: sideload done"; then
		store_verify s
		rm -rf "$T/s/state"
		rounds=$((rounds + 1))
		continue
	fi
	hits=$((hits + 1))
	if [ $((hits % 10)) -eq 0 ]; then
		store_verify s
	fi
done
say "$hits kills hit running imports ($tries tries, $rounds rounds on a fresh store)"
store_verify s

say "the restarted ferryd completes the import from the same bundle"
lines=$(wc -l <"$T/s/log")
node_start s
ctl --socket "$T/s/ferryd.sock" sideload "$T/drive" >"$T/out" 2>"$T/err" ||
	fail "the sideload after the crash loop failed: $(cat "$T/err")"
grep -q "^manifest-0001.fm .* yes$" "$T/out" || fail "llm@1 is not complete: $(cat "$T/out")"
wait_log s "llm: version 1 is active" 60 "$lines"
node_stop s
export_check s llm@1 "$T/model"
store_verify s
ctl --store "$T/s/state" --trust "$PUB" verify llm@1 >/dev/null 2>"$T/err" ||
	fail "ferryctl verify llm@1 on s's store: $(cat "$T/err")"
echo ok
