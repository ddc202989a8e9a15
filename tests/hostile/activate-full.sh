# Activation on a full disk: b's state directory is a small tmpfs that holds
# the store and version 1's files but not version 2's files as well. Version
# 2 arrives and is stored; its automatic activation fails with a sentence
# that says how much room it needs, and `ferryctl activate` says the same;
# version 1 stays active, byte-identical; no partial copy of version 2 is
# left behind; version 2 stays stored, intact. Root only (mount).
. "$FERRY_SRCDIR/tests/hostile/hlib.sh"

[ "$(id -u)" -eq 0 ] || hostile_skip "activate-full.sh mounts a tmpfs: run it as root"

net_init
make_model "$T/model1" 2 31
make_model "$T/model2" 10 32
mkdir -p "$T/b/state"
mount -t tmpfs -o size=16m tmpfs "$T/b/state" 2>"$T/err" ||
	hostile_skip "cannot mount a tmpfs here: $(cat "$T/err")"
HOSTILE_MOUNTS="$T/b/state"

node_make a
node_make b "models.want=*" "peers.peer=$(addr_of a)" "node.min_free_space=0"
M=$T/b/state/models/llm

say "llm@1 arrives on b and is activated"
publish a llm 1 "$T/model1"
node_start a
node_start b
wait_log b "llm: version 1 is active" 60

say "llm@2 is stored, but its files do not fit: activation fails, 1 stays"
node_stop a
publish a llm 2 "$T/model2"
node_start a
wait_log b "model llm version 2 complete" 60
wait_log b "cannot activate llm@2: .*need.*free.*llm stays at version 1" 30
[ "$(readlink "$M/current")" = 1 ] || fail "current points at '$(readlink "$M/current")', not 1"
(cd "$T/model1" && find . -type f) | while read -r f; do
	cmp -s "$T/model1/$f" "$M/current/$f" || fail "models/llm/current/$f differs from version 1"
done
[ ! -e "$M/2" ] || fail "a partial copy of version 2 was left in models/llm/2"
[ -z "$(find "$M" -maxdepth 1 -name '.*')" ] || fail "a temporary copy was left in models/llm/"

say "ferryctl activate llm@2 says why and exits 1"
status=0
ctl --socket "$T/b/ferryd.sock" activate llm@2 >"$T/out" 2>"$T/err" || status=$?
[ "$status" -eq 1 ] || fail "activate exited $status: $(cat "$T/out" "$T/err")"
grep -q "llm stays at version 1" "$T/err" || fail "activate said: $(cat "$T/err")"
[ "$(readlink "$M/current")" = 1 ] || fail "current moved after a failed activate"

say "the stored version 2 is intact: byte-identical on export"
node_stop b
node_stop a
export_check b llm@2 "$T/model2"
