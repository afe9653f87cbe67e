#!/usr/bin/env bash
# Builds the Kayo FS torture guest: the host's kernel (linux-image-amd64)
# and a busybox initramfs (guest/initramfs.sh) holding guest/torture-init
# as /init, the virtio block and network modules, and a static torture
# binary (internal/kayotorture/guestbin, built by the caller).
#
#   guest/torture.sh OUT_DIR TORTURE_BINARY
#
# Output: OUT_DIR/vmlinuz and OUT_DIR/torture.img.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$1"
bin="$2"
mkdir -p "$out"
kernel="$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1 || true)"
[ -n "$kernel" ] || { echo "guest/torture.sh: no /boot/vmlinuz-*: apt-get install linux-image-amd64" >&2; exit 1; }
[ -r "$kernel" ] || { echo "guest/torture.sh: $kernel is not readable" >&2; exit 1; }
kver="${kernel#/boot/vmlinuz-}"
busybox="$(command -v busybox || true)"
[ -x /bin/busybox ] && busybox=/bin/busybox
file "$busybox" 2>/dev/null | grep -q 'statically linked' || [ -x /bin/busybox ] || { echo "guest/torture.sh: need a static busybox: apt-get install busybox-static" >&2; exit 1; }
command -v cpio >/dev/null || { echo "guest/torture.sh: apt-get install cpio" >&2; exit 1; }
. "$here/initramfs.sh"
make_initramfs "$busybox" "$kver" "$here/torture-init" "$out/torture.img.tmp" \
  sh mount insmod sleep cat echo grep ip poweroff
# A second archive appended (the kernel unpacks them in turn): the
# network modules and the torture binary.
extra="$(mktemp -d)"
trap 'rm -rf "$extra"' EXIT
mkdir -p "$extra/bin" "$extra/lib/modules"
for m in net/core/failover drivers/net/net_failover drivers/net/virtio_net; do
  src="/usr/lib/modules/$kver/kernel/$m.ko"
  if [ -f "$src" ]; then cp "$src" "$extra/lib/modules/"
  elif [ -f "$src.xz" ]; then xz -dc "$src.xz" > "$extra/lib/modules/$(basename "$m").ko"
  elif [ -f "$src.zst" ]; then zstd -qdc "$src.zst" > "$extra/lib/modules/$(basename "$m").ko"
  fi
done
cp "$bin" "$extra/bin/kayo-torture"
chmod 755 "$extra/bin/kayo-torture"
(cd "$extra" && find . | cpio -o -H newc --quiet | gzip -1) >> "$out/torture.img.tmp"
cp "$kernel" "$out/vmlinuz"
mv "$out/torture.img.tmp" "$out/torture.img"
