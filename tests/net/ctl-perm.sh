# Who may use the control socket: the socket is mode 0660 in socket_group;
# a member of that group runs read commands but is refused write commands
# (SO_PEERCRED: uid 0 or ferryd's own only); a user outside the group
# cannot connect and is told which group to join. Needs root to act as
# other users (exit 77, skipped, otherwise).
. "$FERRY_SRCDIR/tests/net/lib.sh"

if [ "$(id -u)" -ne 0 ] || ! command -v setpriv >/dev/null ||
	! getent group nogroup >/dev/null || ! getent passwd nobody >/dev/null; then
	echo "skipped: needs root, setpriv, user nobody and group nogroup"
	exit 77
fi
# nobody must be able to reach the socket's directory.
chmod 755 "$T"

as_group_member() {
	setpriv --reuid=nobody --regid=nogroup --clear-groups "$FERRYCTL" "$@"
}
# A user in neither the socket's group nor root's.
as_outsider() {
	setpriv --reuid=nobody --regid=daemon --clear-groups "$FERRYCTL" "$@"
}

net_init
make_model "$T/m1" 1 1
node_make a "node.socket_group=nogroup" "models.want=*"
chmod 755 "$T/a"
publish a llm 1 "$T/m1"
node_start a
S="--socket $T/a/ferryd.sock"

say "the socket: mode 0660, group nogroup"
[ "$(stat -c %a:%G "$T/a/ferryd.sock")" = "660:nogroup" ] ||
	fail "socket is $(stat -c %a:%G "$T/a/ferryd.sock")"

say "a group member runs read commands"
as_group_member $S status >"$T/out" || fail "status as a group member failed"
grep -q "^node id:" "$T/out" || fail "status: $(cat "$T/out")"
as_group_member $S --json models >"$T/out" || fail "models as a group member failed"
grep -q '"llm"' "$T/out" || fail "models: $(cat "$T/out")"

say "a group member is refused write commands, in one sentence"
for cmd in "fetch llm" "cancel llm"; do
	status=0
	# shellcheck disable=SC2086
	as_group_member $S $cmd >/dev/null 2>"$T/err" || status=$?
	[ "$status" -eq 1 ] || fail "$cmd as a group member exited $status"
	grep -q "needs root or ferryd's own user (uid 0); you are uid $(id -u nobody)" "$T/err" ||
		fail "$cmd refusal: $(cat "$T/err")"
	[ "$(wc -l <"$T/err")" -eq 1 ] || fail "more than one line: $(cat "$T/err")"
done
if grep -q "fetch llm requested by uid $(id -u nobody)" "$T/a/log"; then
	fail "a refused command was carried out"
fi

say "root runs them, and the daemon logs who did"
ctl $S fetch llm >/dev/null || fail "fetch as root failed"
grep -q "fetch llm requested by uid 0" "$T/a/log" || fail "the write command was not logged"

say "a user outside the group cannot connect and is told why"
status=0
as_outsider $S status >/dev/null 2>"$T/err" || status=$?
[ "$status" -eq 1 ] || fail "status as an outsider exited $status"
grep -q "cannot connect to $T/a/ferryd.sock: permission denied — are you in the 'nogroup' group?" "$T/err" ||
	fail "outsider message: $(cat "$T/err")"

node_stop a
