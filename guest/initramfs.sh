# Sourced by guest/build.sh and guest/template.sh: one busybox initramfs
# with the virtio block modules of the host's kernel.
#
#   make_initramfs BUSYBOX KVER INIT OUT APPLET...
#
# writes OUT (a gzipped newc cpio) holding BUSYBOX as /bin/busybox with
# each APPLET linked to it, the virtio modules of kernel KVER in
# /lib/modules, and INIT as /init. $INITRAMFS_EXTRA_MODULES lists further
# modules (paths under kernel/drivers, without .ko) to add.
make_initramfs() {
  local busybox="$1" kver="$2" init="$3" out="$4"
  shift 4
  local root
  root="$(mktemp -d)"
  mkdir -p "$root"/{bin,dev,proc,sys,tmp,lib/modules}
  cp "$busybox" "$root/bin/busybox"
  local a m src
  for a in "$@"; do ln -s busybox "$root/bin/$a"; done
  local mdir="/usr/lib/modules/$kver/kernel/drivers"
  for m in virtio/virtio virtio/virtio_ring virtio/virtio_pci_modern_dev virtio/virtio_pci_legacy_dev virtio/virtio_pci block/virtio_blk ${INITRAMFS_EXTRA_MODULES:-}; do
    src="$mdir/$m.ko"
    if [ -f "$src" ]; then cp "$src" "$root/lib/modules/"
    elif [ -f "$src.xz" ]; then xz -dc "$src.xz" > "$root/lib/modules/$(basename "$m").ko"
    elif [ -f "$src.zst" ]; then zstd -qdc "$src.zst" > "$root/lib/modules/$(basename "$m").ko"
    fi
  done
  # Network: virtio-net (with its failover dependencies); the guest gets
  # its addresses by DHCP (internal/dhcpserve).
  for m in net/core/failover drivers/net/net_failover drivers/net/virtio_net; do
    src="/usr/lib/modules/$kver/kernel/$m.ko"
    if [ -f "$src" ]; then cp "$src" "$root/lib/modules/"
    elif [ -f "$src.xz" ]; then xz -dc "$src.xz" > "$root/lib/modules/$(basename "$m").ko"
    elif [ -f "$src.zst" ]; then zstd -qdc "$src.zst" > "$root/lib/modules/$(basename "$m").ko"
    fi
  done
  cp "$init" "$root/init"
  chmod 755 "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out"
  rm -rf "$root"
}
