#!/usr/bin/env bash
# Builds the small test guest of the qemu hypervisor driver from Debian
# packages: the host's kernel image (linux-image-amd64) and a busybox-static
# initramfs whose init prints an incrementing counter to the serial console
# and writes (and reads back, O_DIRECT) records on its virtio disk.
#
#   guest/build.sh [OUT_DIR]     default: guest/out (git-ignored)
#
# Needs: linux-image-amd64, busybox-static, cpio (.ci/run installs them).
# Output: OUT_DIR/vmlinuz and OUT_DIR/initrd.img; rebuilt only when missing
# or older than this script.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/out}"
mkdir -p "$out"
if [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ] && [ "$out/initrd.img" -nt "$0" ] && [ "$out/initrd.img" -nt "$here/init" ] && [ "$out/initrd.img" -nt "$here/initramfs.sh" ]; then
  exit 0
fi
kernel="$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1 || true)"
[ -n "$kernel" ] || { echo "guest/build.sh: no /boot/vmlinuz-*: apt-get install linux-image-amd64" >&2; exit 1; }
[ -r "$kernel" ] || { echo "guest/build.sh: $kernel is not readable" >&2; exit 1; }
kver="${kernel#/boot/vmlinuz-}"
busybox="$(command -v busybox || true)"
[ -x /bin/busybox ] && busybox=/bin/busybox
file "$busybox" 2>/dev/null | grep -q 'statically linked' || [ -x /bin/busybox ] || { echo "guest/build.sh: need a static busybox: apt-get install busybox-static" >&2; exit 1; }
command -v cpio >/dev/null || { echo "guest/build.sh: apt-get install cpio" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
. "$here/initramfs.sh"
make_initramfs "$busybox" "$kver" "$here/init" "$out/initrd.img.tmp" \
  sh mount insmod dd cat echo sleep mknod date tr head hexdump printf reboot poweroff ip nc setsid chmod udhcpc grep
cp "$kernel" "$out/vmlinuz.tmp"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
mv "$out/initrd.img.tmp" "$out/initrd.img"
echo "guest: $out/vmlinuz ($kver) + $out/initrd.img ($(du -k "$out/initrd.img" | cut -f1) KiB)"
