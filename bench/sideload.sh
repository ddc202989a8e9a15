#!/bin/sh
# Sideload throughput against cp -r of the same model files to and from the
# same medium, measured in one run.
#
#   bench/sideload.sh [SIZE] [tmpfs|ext4]    SIZE with K/M/G suffix; default 512M
#
# The model is a bf16 safetensors file of SIZE (bench/gen_weights) published
# into a store first (not timed). The medium is a loop-mounted ext4 image on
# TMPDIR (default /var/tmp; root only; the default when run as root) or a
# directory on /dev/shm (tmpfs). Timed, each write followed by a sync of the
# medium's file system (bundle create fsyncs each pack):
#   write: cp -r MODEL MEDIUM        against  ferryctl bundle create --out MEDIUM
#   read:  cp -r MEDIUM/MODEL STORE  against  ferryctl sideload MEDIUM (verify + store)
# On ext4 the image is unmounted and mounted again before each read, so both
# reads start with a cold cache. Each is timed twice; the faster run counts.
# Ratios are ferry's time over cp's.
set -eu

size=$(numfmt --from=iec "${1:-512M}")
medium=${2:-$([ "$(id -u)" -eq 0 ] && echo ext4 || echo tmpfs)}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${FERRY_BUILDDIR:-$top/build}
ctl=$build/ferryctl
work=$(mktemp -d "${TMPDIR:-/var/tmp}/ferry-bench-sideload-XXXXXX")
mnt=$work/medium
cleanup() {
	umount "$mnt" 2>/dev/null || true
	rm -rf "$work" "${shm:-}"
}
trap cleanup EXIT INT TERM

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f MB/s", b / s / 1e6 }'; }

mkdir -p "$work/model" "$mnt"
"$build/bench/gen_weights" --dtype bf16 --size "$size" --seed 1 "$work/model/model.safetensors" \
	>/dev/null
printf '{"architectures": ["bench"]}\n' >"$work/model/config.json"
raw=$(du -sb "$work/model" | cut -f1)
"$ctl" keygen --out "$work/key" >"$work/keygen.out"
pk=$(tail -n 1 "$work/keygen.out")
"$ctl" --store "$work/hq" publish --key "$work/key" bench 1 "$work/model" >/dev/null 2>&1
mkdir -p "$work/clinic"
echo "$pk" >"$work/clinic/trust"

case $medium in
ext4)
	truncate -s $((size * 3 + (64 << 20))) "$work/drive.img"
	mkfs.ext4 -q -F "$work/drive.img"
	mount -o loop "$work/drive.img" "$mnt"
	remount() { umount "$mnt" && mount -o loop,ro,nosuid,nodev,noexec "$work/drive.img" "$mnt"; }
	;;
tmpfs)
	shm=$(mktemp -d /dev/shm/ferry-bench-sideload-XXXXXX)
	rmdir "$mnt"
	ln -s "$shm" "$mnt"
	remount() { :; }
	;;
*)
	echo "bench/sideload.sh: medium is tmpfs or ext4, not $medium" >&2
	exit 2
	;;
esac
sync
cat "$work/model/model.safetensors" >/dev/null

# Each is timed twice and the faster run counts (the machines are shared).
keep() { best=$(awk -v a="${best:-$1}" -v b="$1" 'BEGIN { print (a < b ? a : b) }'); }

best=""
for run in 1 2; do
	rm -rf "$mnt/model"
	sync
	t0=$(now); cp -r "$work/model" "$mnt/model"; sync -f "$mnt/model/config.json"; t1=$(now)
	keep "$(secs "$t0" "$t1")"
done
cpw=$best
rm -rf "$mnt/model"
best=""
for run in 1 2; do
	rm -rf "$mnt/ferry-bundle"
	sync
	t0=$(now); "$ctl" --store "$work/hq" --json bundle create --out "$mnt" bench >"$work/create.json"; t1=$(now)
	keep "$(secs "$t0" "$t1")"
done
bcw=$best
bytes=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes"])' "$work/create.json")
cp -r "$work/model" "$mnt/model"

best=""
for run in 1 2; do
	rm -rf "$work/copy"
	remount
	t0=$(now); cp -r "$mnt/model" "$work/copy"; sync -f "$work/copy/config.json"; t1=$(now)
	keep "$(secs "$t0" "$t1")"
done
cpr=$best
best=""
for run in 1 2; do
	rm -rf "$work/clinic/store" "$work/clinic/lock"
	remount
	t0=$(now); "$ctl" --store "$work/clinic" sideload "$mnt" >"$work/side.out" 2>/dev/null; t1=$(now)
	keep "$(secs "$t0" "$t1")"
	grep -q '^manifest-0001.fm .* yes$' "$work/side.out" || { cat "$work/side.out"; exit 1; }
done
sdr=$best

echo "model:      $raw bytes, bf16 safetensors (gen_weights --seed 1); medium: $medium"
echo "bundle:     $bytes bytes on the medium ($(awk -v a="$bytes" -v b="$raw" 'BEGIN { printf "%.1f", 100 * a / b }')% of the model)"
echo "write  cp -r:          $cpw s  $(rate "$raw" "$cpw")"
echo "write  bundle create:  $bcw s  $(rate "$raw" "$bcw")  ratio $(awk -v a="$bcw" -v b="$cpw" 'BEGIN { printf "%.2f", a / b }')"
echo "read   cp -r:          $cpr s  $(rate "$raw" "$cpr")"
echo "read   sideload:       $sdr s  $(rate "$raw" "$sdr")  ratio $(awk -v a="$sdr" -v b="$cpr" 'BEGIN { printf "%.2f", a / b }')"
echo "(rates are model bytes per second; ratio = ferry's time / cp's time, lower is better)"
