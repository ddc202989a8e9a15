# Automatic activation on a receiving node: each version that arrives complete
# and verified becomes models/NAME/current (a relative symlink), byte-identical
# to what was published, the previous version is kept, on_activate runs with
# the model and version, and metrics_textfile is written. A version whose only
# source serves corrupt chunks never completes, so never activates: the
# version before it stays active.
. "$FERRY_SRCDIR/tests/net/lib.sh"

net_init
make_model "$T/model1" 4 1
make_model "$T/model2" 4 2
make_model "$T/model3" 4 3
cat >"$T/hook.sh" <<HOOK
echo "\$FERRY_MODEL \$FERRY_VERSION \$FERRY_PREVIOUS" >>"$T/hook.out"
HOOK

node_make a
node_make b "models.want=*" "peers.peer=$(addr_of a)" "node.metrics_textfile=$T/b/ferry.prom" \
	"models.on_activate=sh $T/hook.sh"
M=$T/b/state/models/llm

# hook_saw LINE: wait until on_activate has written LINE last ("MODEL VERSION PREVIOUS").
hook_saw() {
	deadline=$(($(date +%s) + 30))
	until [ "$(tail -n 1 "$T/hook.out" 2>/dev/null)" = "$1" ]; do
		[ "$(date +%s)" -lt "$deadline" ] ||
			fail "on_activate: last line '$(tail -n 1 "$T/hook.out" 2>/dev/null)', not '$1'"
		sleep 0.2
	done
}

# active NODE_MODEL_DIR VERSION: current is the relative link VERSION and its
# files are the published ones, byte for byte.
active() {
	[ -L "$M/current" ] || fail "no models/llm/current link"
	[ "$(readlink "$M/current")" = "$1" ] ||
		fail "current points at '$(readlink "$M/current")', not '$1'"
	(cd "$2" && find . -type f) | while read -r f; do
		cmp -s "$2/$f" "$M/current/$f" || fail "models/llm/current/$f differs from version $1"
	done
	[ "$(find "$M/current/" -type f | wc -l)" -eq "$(find "$2" -type f | wc -l)" ] ||
		fail "models/llm/$1 does not hold exactly the published files"
}

say "llm@1 arrives on b and is activated"
publish a llm 1 "$T/model1"
node_start a
node_start b
wait_log b "llm: version 1 is active" 60
active 1 "$T/model1"
hook_saw "llm 1 0"

say "llm@2 arrives: current switches, version 1 is kept"
node_stop a
publish a llm 2 "$T/model2"
node_start a
wait_log b "llm: version 2 is active" 60
active 2 "$T/model2"
[ -d "$M/1" ] || fail "version 1 (the previous) was removed"
hook_saw "llm 2 1"

say "metrics_textfile is written"
deadline=$(($(date +%s) + 30))
until grep -q '^ferry_model_active_version{name="llm"} 2$' "$T/b/ferry.prom" 2>/dev/null; do
	[ "$(date +%s)" -lt "$deadline" ] || fail "metrics_textfile never said llm is at version 2"
	sleep 0.5
done
grep -q '^ferry_chunks_verified_total [1-9]' "$T/b/ferry.prom" ||
	fail "metrics_textfile: no verified chunks counted"
[ -z "$(find "$T/b" -maxdepth 1 -name '.ferry.prom.*')" ] || fail "a temporary metrics file was left"

say "llm@3 only from a corrupting source: never activated, 2 stays"
node_stop a
publish a llm 3 "$T/model3"
node_start a FERRY_TEST_CORRUPT_SERVE=1
wait_log b "peer $(short_id a) sent a bad chunk" 60
wait_log b "banning peer $(short_id a)" 60
grep -q "version 3 is active" "$T/b/log" && fail "b activated a version with corrupt chunks"
grep -q "model llm version 3 complete" "$T/b/log" && fail "b completed llm@3 from a corrupt peer"
active 2 "$T/model2"
[ "$(tail -n 1 "$T/hook.out")" = "llm 2 1" ] || fail "on_activate ran for llm@3"

for n in a b; do node_stop "$n"; done
