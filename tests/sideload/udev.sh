#!/bin/sh
# The automatic import: 90-ferry-sideload.rules asks systemd for
# ferry-sideload@DEVICE.service for a block device with a file system (and
# not for a loop device, nor one without a file system), checked with
# `udevadm test` in a private mount namespace; the unit passes
# `systemd-analyze verify`; and its commands, run in order as systemd would
# run them, import a drive's bundle, skip a drive without one, and unmount.
. "$(dirname "$0")/lib.sh"
need_root udevadm unshare systemd-analyze mkfs.ext4 losetup
: "${FERRY_SRCDIR:=$(cd "$(dirname "$0")/../.." && pwd)}"
RULE=$FERRY_SRCDIR/systemd/90-ferry-sideload.rules
UNIT=$FERRY_SRCDIR/systemd/ferry-sideload@.service.in

truncate -s 64M "$T/fs.img"
mkfs.ext4 -q -F "$T/fs.img"
truncate -s 8M "$T/blank.img"
L=$(losetup -f --show "$T/fs.img")
at_exit "losetup -d '$L'"
LB=$(losetup -f --show "$T/blank.img")
at_exit "losetup -d '$LB'"
K=$(basename "$L")

# udev_wants RULES_DIR DEVICE: the SYSTEMD_WANTS udev would set for DEVICE.
udev_wants() {
	unshare -m sh -c "mount --bind '$1' /lib/udev/rules.d &&
		udevadm test --action=add /sys/class/block/$2 2>/dev/null" |
		sed -n 's/^SYSTEMD_WANTS=//p'
}
# blkid is imported by the distribution's 60-persistent-storage.rules; these
# tests bring only the rule under test, so they import it themselves.
mkdir -p "$T/rules" "$T/rules-noloop"
echo 'SUBSYSTEM=="block", IMPORT{builtin}="blkid"' >"$T/rules/10-blkid.rules"
cp "$T/rules/10-blkid.rules" "$T/rules-noloop/"
cp "$RULE" "$T/rules/"
sed '/^KERNEL=="loop/d' "$RULE" >"$T/rules-noloop/90-ferry-sideload.rules"
[ -z "$(udev_wants "$T/rules" "$K")" ] || fail "the rule starts a sideload for a loop device"
[ "$(udev_wants "$T/rules-noloop" "$K")" = "ferry-sideload@$K.service" ] ||
	fail "the rule does not start ferry-sideload@$K.service for a file system"
[ -z "$(udev_wants "$T/rules-noloop" "$(basename "$LB")")" ] ||
	fail "the rule starts a sideload for a device with no file system"

# The unit as installed (paths substituted), verified by systemd.
mkdir -p "$T/units"
sed -e "s|@bindir@|$FERRY_BUILDDIR|g" -e "s|@localstatedir@|/var|g" -e "s|@runstatedir@|/run|g" "$UNIT" \
	>"$T/units/ferry-sideload@.service"
grep -q '@[a-z]*@' "$T/units/ferry-sideload@.service" && fail "an unsubstituted @variable@ in the unit"
(cd "$T/units" && systemd-analyze verify --man=no "ferry-sideload@$K.service") ||
	fail "systemd-analyze verify rejects the unit"

# Its commands, in systemd's order, with the runtime directory under $T.
setup_stores
make_model "$T/v1" 4 1
publish demo 1 "$T/v1"
mkdir -p "$T/w"
at_exit "umount '$T/w' 2>/dev/null"
mount "$L" "$T/w"
ctl --store "$HQ" bundle create --out "$T/w" demo >/dev/null
umount "$T/w"
# run_unit DEVICE: ExecStartPre, ExecStart, ExecStopPost with %I = DEVICE, and
# FERRYCTL_OPTS from UNIT_OPTS (default: --store, the drop-in for a node without ferryd).
run_unit() {
	mkdir -p "$T/run/ferry-sideload/$1"
	sed -n 's/^\(ExecStartPre\|ExecStart\|ExecStopPost\)=-\{0,1\}//p' "$T/units/ferry-sideload@.service" |
		sed -e "s|%I|$1|g" -e "s|/run/ferry-sideload|$T/run/ferry-sideload|g" >"$T/cmds"
	FERRYCTL_OPTS=${UNIT_OPTS:-"--store=$CLINIC"}
	export FERRYCTL_OPTS
	status=0
	while read -r cmd; do
		eval "$cmd" >>"$T/unit.out" 2>&1 || status=$?
	done <"$T/cmds"
	return "$status"
}
run_unit "$K" || fail "the unit's commands failed: $(cat "$T/unit.out")"
grep -q '^manifest-0001.fm  *demo  *1  *new  *yes$' "$T/unit.out" ||
	fail "the unit did not import the bundle: $(cat "$T/unit.out")"
grep -q "$T/run/ferry-sideload/$K" /proc/mounts && fail "the unit left the drive mounted"
# A drive without ferry-bundle/ is left alone.
mount "$L" "$T/w"
rm -rf "$T/w/ferry-bundle"
umount "$T/w"
: >"$T/unit.out"
run_unit "$K" || fail "the unit's commands failed: $(cat "$T/unit.out")"
grep -q "no ferry-bundle/ folder on /dev/$K: nothing to import" "$T/unit.out" ||
	fail "a drive without a bundle: $(cat "$T/unit.out")"

# The unit's default: through the running ferryd, which reads the drive
# through the descriptor ferryctl passes (only the socket's path is the
# test's own; the installed unit uses ferryd's default socket).
mount "$L" "$T/w"
ctl --store "$HQ" bundle create --out "$T/w" demo >/dev/null
umount "$T/w"
mkdir -p "$T/d"
ctl netkey --out "$T/d/network.key" >/dev/null
cat >"$T/d/ferryd.conf" <<EOF
[node]
state_dir = $T/d/state
socket = $T/d/ferryd.sock
socket_group =
listen = off
network_key_file = $T/d/network.key
[peers]
lan_discovery = off
[trust]
publisher = $PK
EOF
"$FERRY_BUILDDIR/ferryd" -c "$T/d/ferryd.conf" >"$T/d/log" 2>&1 &
dpid=$!
at_exit "kill -9 $dpid 2>/dev/null"
n=0
until ctl --socket "$T/d/ferryd.sock" status >/dev/null 2>&1; do
	n=$((n + 1))
	[ "$n" -lt 100 ] || fail "ferryd did not start: $(cat "$T/d/log")"
	sleep 0.1
done
: >"$T/unit.out"
UNIT_OPTS="--socket=$T/d/ferryd.sock" run_unit "$K" ||
	fail "the unit's commands through ferryd failed: $(cat "$T/unit.out")"
grep -q '^manifest-0001.fm  *demo  *1  *new  *yes$' "$T/unit.out" ||
	fail "the unit did not import the bundle through ferryd: $(cat "$T/unit.out")"
grep -q "sideload: importing a bundle" "$T/d/log" || fail "the import did not go through ferryd"
grep -q "$T/run/ferry-sideload/$K" /proc/mounts && fail "the unit left the drive mounted"
echo ok
