#!/bin/sh
# Install ferry into a DESTDIR with a distribution's layout (--prefix=/usr
# --sysconfdir=/etc --localstatedir=/var --runstatedir=/run, the unit where
# pkg-config's systemd says) and check that every file lands where the
# distribution expects, that a reinstall keeps an edited ferryd.conf, that
# the default ferryd.conf is all comments and names every key, and that the
# installed unit passes `systemd-analyze verify` with a security exposure of
# at most 2.0. Exits 77 (skipped) after the file checks when systemd-analyze
# is missing.
set -eu

: "${FERRY_SRCDIR:?run from make check}"
: "${FERRY_BUILDDIR:?run from make check}"
max_exposure=2.0

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-install.XXXXXX")
trap 'chmod -R u+w "$tmp" 2>/dev/null; rm -rf "$tmp"' EXIT
root=$tmp/root
fails=0

fail() {
	echo "FAIL: $*" >&2
	fails=$((fails + 1))
}

unitdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
[ -n "$unitdir" ] || unitdir=/lib/systemd/system
sysusersdir=/usr/lib/sysusers.d
tmpfilesdir=/usr/lib/tmpfiles.d
udevrulesdir=/usr/lib/udev/rules.d
modulesloaddir=/usr/lib/modules-load.d
sysctldir=/usr/lib/sysctl.d

mkdir "$tmp/build"
(
	cd "$tmp/build"
	"$FERRY_SRCDIR/configure" -q --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
		--runstatedir=/run --with-systemdsystemunitdir="$unitdir" >/dev/null
	make -s -j2 install DESTDIR="$root" >"$tmp/install.log" 2>&1
) || {
	cat "$tmp/install.log" >&2 || true
	echo "FAIL: configure or make install" >&2
	exit 1
}

# ---- where every file lands -----------------------------------------------
for f in /usr/sbin/ferryd /usr/bin/ferryctl; do
	[ -x "$root$f" ] || fail "$f is not installed or not executable"
done
for f in "$unitdir/ferryd.service" "$sysusersdir/ferry.conf" "$tmpfilesdir/ferry.conf" \
	/etc/ferry/ferryd.conf "$unitdir/ferry-sideload@.service" \
	"$udevrulesdir/90-ferry-sideload.rules" "$modulesloaddir/ferry.conf" "$sysctldir/50-ferry.conf"; do
	[ -f "$root$f" ] || fail "$f is not installed"
done
for m in "$FERRY_SRCDIR"/docs/*.[1-8]; do
	[ -e "$m" ] || continue
	page=$(basename "$m")
	[ -f "$root/usr/share/man/man${page##*.}/$page" ] ||
		fail "man page $page is not in /usr/share/man/man${page##*.}"
done
# Nothing under /usr/local, nothing the build substitutes left unsubstituted.
[ ! -e "$root/usr/local" ] || fail "files under /usr/local: $(find "$root/usr/local" -type f)"
if grep -rn '@[a-z]*@' "$root$unitdir" "$root$tmpfilesdir" "$root/etc/ferry" \
	"$root$udevrulesdir" >&2; then
	fail "unsubstituted @...@ in installed files"
fi
grep -qx 'ExecStart=/usr/sbin/ferryd -c /etc/ferry/ferryd.conf' "$root$unitdir/ferryd.service" ||
	fail "the unit does not start /usr/sbin/ferryd with /etc/ferry/ferryd.conf"
# The automatic import: udev asks for the template, which imports through ferryd's socket.
grep -q 'SYSTEMD_WANTS.*ferry-sideload@%k.service' "$root$udevrulesdir/90-ferry-sideload.rules" ||
	fail "the udev rule does not start ferry-sideload@%k.service"
grep -q '^ExecStart=.*exec /usr/bin/ferryctl $FERRYCTL_OPTS sideload /run/ferry-sideload/%I' \
	"$root$unitdir/ferry-sideload@.service" ||
	fail "the sideload unit does not run /usr/bin/ferryctl sideload"
grep -q '^Environment=FERRYCTL_OPTS=$' "$root$unitdir/ferry-sideload@.service" ||
	fail "the sideload unit does not go through ferryd's socket by default"
grep -qx 'After=dev-%i.device ferryd.service' "$root$unitdir/ferry-sideload@.service" ||
	fail "the sideload unit does not start after ferryd"
grep -qx 'd /var/lib/ferry 0750 ferry ferry -' "$root$tmpfilesdir/ferry.conf" ||
	fail "tmpfiles does not create /var/lib/ferry 0750 ferry ferry"
grep -q '^u ferry ' "$root$sysusersdir/ferry.conf" || fail "sysusers does not create user ferry"
# BBR for the unprivileged ferryd: the module is loaded and allowed at boot.
grep -qx 'tcp_bbr' "$root$modulesloaddir/ferry.conf" || fail "modules-load does not load tcp_bbr"
grep -qx 'net.ipv4.tcp_allowed_congestion_control = reno cubic bbr' "$root$sysctldir/50-ferry.conf" ||
	fail "sysctl.d does not allow bbr"

# ---- the default configuration ----------------------------------------------
ferryd=$root/usr/sbin/ferryd
conf=$root/etc/ferry/ferryd.conf
if grep -v '^[;[]' "$conf" | grep -q '[^[:space:]]'; then
	fail "ferryd.conf has lines that are neither comments nor section headers"
fi
: >"$tmp/empty.conf"
"$ferryd" -c "$tmp/empty.conf" --check-config >"$tmp/builtin" 2>&1 || fail "ferryd --check-config on an empty file"
"$ferryd" -c "$conf" --check-config >"$tmp/default" 2>&1 || fail "ferryd --check-config on the default ferryd.conf: $(cat "$tmp/default")"
cmp -s "$tmp/builtin" "$tmp/default" || fail "the default ferryd.conf changes the built-in defaults"
for key in $(sed -n 's/^\([a-z_]*\) =.*/\1/p' "$tmp/builtin" | sort -u); do
	grep -q "^;$key =" "$conf" || fail "the default ferryd.conf does not show $key"
done

# An upgrade keeps the operator's ferryd.conf.
echo "; edited by the operator" >>"$conf"
cp "$conf" "$tmp/edited"
(cd "$tmp/build" && make -s install DESTDIR="$root" >"$tmp/install2.log" 2>&1) || fail "second make install"
cmp -s "$conf" "$tmp/edited" || fail "make install overwrote an edited ferryd.conf"
# ... and so does uninstall, which removes everything else.
(cd "$tmp/build" && make -s uninstall DESTDIR="$root" >"$tmp/uninstall.log" 2>&1) || fail "make uninstall"
[ -f "$conf" ] || fail "make uninstall removed an edited ferryd.conf"
left=$(find "$root" -type f ! -path "$conf" | head -5)
[ -z "$left" ] || fail "make uninstall left: $left"

[ "$fails" -eq 0 ] || exit 1

# ---- the unit, by systemd's own tools ---------------------------------------
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd-analyze is missing; installed files are as expected"
	exit 77
fi
(cd "$tmp/build" && make -s install DESTDIR="$root" >/dev/null 2>&1)
# verify checks that ExecStart= exists: point it into the DESTDIR.
mkdir "$tmp/unit"
sed "s|=/usr/sbin/ferryd|=$root/usr/sbin/ferryd|" "$root$unitdir/ferryd.service" \
	>"$tmp/unit/ferryd.service"
if ! systemd-analyze verify --man=no "$tmp/unit/ferryd.service" >"$tmp/verify" 2>&1 ||
	[ -s "$tmp/verify" ]; then
	cat "$tmp/verify" >&2
	fail "systemd-analyze verify is not clean"
fi
systemd-analyze security --offline=true "$root$unitdir/ferryd.service" >"$tmp/security" 2>&1 ||
	true
exposure=$(sed -n 's/.*Overall exposure level for ferryd.service: \([0-9.]*\).*/\1/p' "$tmp/security")
if [ -z "$exposure" ]; then
	cat "$tmp/security" >&2
	fail "systemd-analyze security printed no exposure level"
elif awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e > m) }'; then
	grep '✗' "$tmp/security" >&2 || true
	fail "security exposure $exposure is above $max_exposure"
else
	echo "systemd-analyze security: exposure $exposure (at most $max_exposure)"
fi
[ "$fails" -eq 0 ]
