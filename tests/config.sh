#!/bin/sh
# ferryd's configuration and outer shell, as an operator sees them:
#  - golden files in tests/config/: `ferryd --check-config` prints valid-*.conf
#    (and dev-*.conf over `--dev /srv/ferry-dev`) exactly as *.expected, and
#    rejects bad-*.conf with exactly the stderr in bad-*.expected, exit 1;
#  - a running ferryd keeps its configuration when a reload finds a broken
#    file, reloads a good one, and stops cleanly on SIGTERM and SIGINT;
#  - sd_notify: READY=1, STATUS=, RELOADING=1, STOPPING=1 and watchdog pings
#    reach a fake $NOTIFY_SOCKET (a path, and an abstract '@' socket).
# Set FERRY_GOLDEN_UPDATE=1 to rewrite the .expected files from the output.
set -u

builddir=${FERRY_BUILDDIR:-$(pwd)}
srcdir=${FERRY_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
ferryd="$builddir/ferryd"
golden="$srcdir/tests/config"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-config.XXXXXX")
failures=0
pids=""

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	failures=$((failures + 1))
}

# wait_for FILE TEXT: until FILE contains TEXT (a fixed string), at most 20 s.
wait_for() {
	i=0
	while ! grep -qF -- "$2" "$1" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 400 ]; then
			echo "timed out waiting for '$2' in $1:"
			cat "$1" 2>/dev/null
			return 1
		fi
		sleep 0.05
	done
}

# ---- golden files ----

# check_golden NAME.conf [ferryd options...]
check_golden() {
	conf=$1
	shift
	base=${conf%.conf}
	(cd "$golden" && "$ferryd" "$@" -c "$conf" --check-config) >"$tmp/out" 2>"$tmp/err"
	rc=$?
	case $base in
	bad-*)
		want=1
		got="$tmp/err"
		other="$tmp/out"
		;;
	*)
		want=0
		got="$tmp/out"
		other="$tmp/err"
		;;
	esac
	if [ "${FERRY_GOLDEN_UPDATE:-0}" = 1 ]; then
		cp "$got" "$golden/$base.expected"
	fi
	[ $rc -eq $want ] || fail "$conf: exit status $rc, expected $want"
	if ! cmp -s "$got" "$golden/$base.expected"; then
		fail "$conf: output differs from $base.expected:"
		diff -u "$golden/$base.expected" "$got"
	fi
	if [ -s "$other" ]; then
		fail "$conf: unexpected output on the other stream:"
		cat "$other"
	fi
}

n=0
for f in "$golden"/*.conf; do
	conf=$(basename "$f")
	case $conf in
	dev-*) check_golden "$conf" --dev /srv/ferry-dev ;;
	*) check_golden "$conf" ;;
	esac
	n=$((n + 1))
done
[ $n -ge 5 ] || fail "only $n golden configs found in $golden"

# The canonical output is itself a valid config that prints the same.
"$ferryd" -c "$golden/valid-full.conf" --check-config >"$tmp/once.conf" 2>&1
"$ferryd" -c "$tmp/once.conf" --check-config >"$tmp/twice.conf" 2>&1
cmp -s "$tmp/once.conf" "$tmp/twice.conf" || fail "canonical output does not print back the same"

# A file that cannot be read.
"$ferryd" -c "$tmp/missing.conf" --check-config >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 1 ] || fail "missing file: exit status $rc, expected 1"
grep -qxF "$tmp/missing.conf: No such file or directory" "$tmp/err" ||
	fail "missing file: stderr was: $(cat "$tmp/err")"

# Usage errors exit 2.
"$ferryd" --no-such-option >/dev/null 2>&1
rc=$?
[ $rc -eq 2 ] || fail "unknown option: exit status $rc, expected 2"
"$ferryd" -d peer,nonsense --check-config >/dev/null 2>"$tmp/err"
rc=$?
[ $rc -eq 2 ] || fail "unknown log group: exit status $rc, expected 2"
grep -qF "unknown log group 'nonsense'" "$tmp/err" || fail "unknown log group not named"

# ---- the running daemon ----

have_python=no
command -v python3 >/dev/null 2>&1 && have_python=yes

# start_listener ADDRESS OUTFILE: a fake service manager that appends each
# datagram it receives to OUTFILE, followed by a line "--".
start_listener() {
	cat >"$tmp/listen.py" <<'EOF'
import socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + path[1:] if path.startswith("@") else path)
s.settimeout(60)
open(out + ".bound", "w").close()
with open(out, "a") as f:
    while True:
        try:
            data = s.recv(4096)
        except socket.timeout:
            break
        f.write(data.decode() + "\n--\n")
        f.flush()
EOF
	python3 "$tmp/listen.py" "$1" "$2" &
	listener=$!
	pids="$pids $listener"
	i=0
	while [ ! -e "$2.bound" ] && [ $i -lt 400 ]; do
		i=$((i + 1))
		sleep 0.05
	done
	[ -e "$2.bound" ] || fail "notify listener did not start"
}

dev="$tmp/dev"
mkdir -p "$dev"
# The daemon needs the network key; it listens nowhere, so parallel runs do not collide.
"$builddir/ferryctl" netkey --out "$dev/network.key" >/dev/null || fail "ferryctl netkey failed"
cat >"$dev/ferryd.conf" <<'EOF'
[node]
site = lab
listen = off
[peers]
lan_discovery = off
EOF

if [ $have_python = yes ]; then
	start_listener "$tmp/notify.sock" "$tmp/notify"
	NOTIFY_SOCKET="$tmp/notify.sock"
	export NOTIFY_SOCKET
else
	echo "python3 not found: not checking sd_notify"
fi
"$ferryd" --dev "$dev" -d config 2>"$tmp/log1" &
daemon=$!
pids="$pids $daemon"
unset NOTIFY_SOCKET
wait_for "$tmp/log1" "<5>main: ferryd " || fail "ferryd did not start"
grep -qE '^<5>main: ferryd [0-9.]+ starting, site lab$' "$tmp/log1" ||
	fail "no start line with the site: $(cat "$tmp/log1")"
if [ $have_python = yes ]; then
	wait_for "$tmp/notify" "READY=1" || fail "no READY=1"
	grep -qxF "STATUS=running, site lab" "$tmp/notify" || fail "no STATUS line"
fi

# A broken file on reload: logged with file and line, the old one kept.
cat >"$dev/ferryd.conf" <<'EOF'
[node]
site = Bad Site
[limits]
upload_rate = lots
EOF
kill -HUP $daemon
wait_for "$tmp/log1" "keeping the previous configuration" || fail "bad reload not reported"
grep -qF "<3>config: $dev/ferryd.conf:2: site: 'Bad Site' is not a site name" "$tmp/log1" ||
	fail "bad reload: the site error is not logged"
grep -qF "<3>config: $dev/ferryd.conf:4: upload_rate: 'lots' is not a rate" "$tmp/log1" ||
	fail "bad reload: the rate error is not logged"
kill -0 $daemon 2>/dev/null || fail "ferryd died after a bad reload"

# A good file on reload; a key that needs a restart is named.
cat >"$dev/ferryd.conf" <<'EOF'
[node]
site = lab2
state_dir = /elsewhere
listen = off
[peers]
lan_discovery = off
EOF
kill -HUP $daemon
wait_for "$tmp/log1" "<5>config: configuration reloaded" || fail "good reload not reported"
grep -qF "state_dir in [node] changed: the new value takes effect when ferryd restarts" \
	"$tmp/log1" || fail "restart-only key change not logged"
if [ $have_python = yes ]; then
	wait_for "$tmp/notify" "STATUS=running, site lab2" || fail "no STATUS after reload"
	grep -qF "RELOADING=1" "$tmp/notify" || fail "no RELOADING=1"
fi

kill -TERM $daemon
wait $daemon
rc=$?
[ $rc -eq 0 ] || fail "ferryd exited with $rc after SIGTERM"
grep -qxF "<5>main: received SIGTERM, shutting down" "$tmp/log1" || fail "shutdown not logged"
grep -qxF "<5>main: stopped" "$tmp/log1" || fail "stop not logged"
[ $have_python = yes ] && { grep -qxF "STOPPING=1" "$tmp/notify" || fail "no STOPPING=1"; }

# An abstract notify socket and the watchdog; SIGINT stops too.
if [ $have_python = yes ]; then
	start_listener "@ferry-test-$$" "$tmp/notify2"
	printf '[node]\nsite = lab\nlisten = off\n[peers]\nlan_discovery = off\n' >"$tmp/overlay.conf"
	NOTIFY_SOCKET="@ferry-test-$$" WATCHDOG_USEC=200000 \
		"$ferryd" --dev "$dev" -c "$tmp/overlay.conf" 2>"$tmp/log2" &
	daemon=$!
	pids="$pids $daemon"
	wait_for "$tmp/notify2" "READY=1" || fail "abstract socket: no READY=1"
	wait_for "$tmp/notify2" "WATCHDOG=1" || fail "no watchdog ping"
	kill -INT $daemon
	wait $daemon
	rc=$?
	[ $rc -eq 0 ] || fail "ferryd exited with $rc after SIGINT"
	grep -qxF "<5>main: received SIGINT, shutting down" "$tmp/log2" || fail "SIGINT not logged"
fi

# A daemon with a broken config does not start.
"$ferryd" --dev "$dev" -c "$golden/bad-unknown-key.conf" 2>"$tmp/log3"
rc=$?
[ $rc -eq 1 ] || fail "ferryd started with a broken config (exit $rc)"
grep -qF "<3>config: $golden/bad-unknown-key.conf:3: unknown key 'sit' in [node]" "$tmp/log3" ||
	fail "startup error not logged: $(cat "$tmp/log3")"
grep -qF "starting" "$tmp/log3" && fail "ferryd said it was starting with a broken config"

if [ $failures -ne 0 ]; then
	echo "$failures failure(s)"
	exit 1
fi
echo "all config checks passed"
exit 0
