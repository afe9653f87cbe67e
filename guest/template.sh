#!/usr/bin/env bash
# Builds the bootable template disk from Debian packages, offline and
# without loop mounts or root:
#
#   guest/template.sh [OUT_DIR]     default: guest/out (git-ignored)
#
# A 64 MiB disk: syslinux's MBR, one active FAT16 partition from sector
# 2048 (label KAYOTMPL, a fresh volume id per build) holding the host's
# kernel, a busybox initramfs whose init is guest/template-init and a
# syslinux.cfg booting them with the console on the first serial port,
# and syslinux's boot sector and ldlinux. It is converted with
# `qemu-img convert -O vpc -o subformat=dynamic`: a dynamic VHD that QEMU
# (format=vpc) and internal/engine/vhd both read, and that can be the
# parent of differencing disks.
#
# Needs: linux-image-amd64, busybox-static, cpio, fdisk (sfdisk),
# dosfstools (mkfs.fat), mtools (mcopy), syslinux, syslinux-common
# (mbr.bin), qemu-utils (.ci/run installs them).
# Output: OUT_DIR/template.vhd; rebuilt only when missing or older than
# this script or the init.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/out}"
mkdir -p "$out"
vhd="$out/template.vhd"
if [ -s "$vhd" ] && [ "$vhd" -nt "$0" ] && [ "$vhd" -nt "$here/template-init" ] && [ "$vhd" -nt "$here/initramfs.sh" ]; then
  exit 0
fi
die() { echo "guest/template.sh: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 not found: apt-get install $2"; }
need sfdisk fdisk
need mkfs.fat dosfstools
need mcopy mtools
need syslinux syslinux
need cpio cpio
need qemu-img qemu-utils
mbr=""
for m in /usr/lib/syslinux/mbr/mbr.bin /usr/lib/SYSLINUX/mbr.bin /usr/share/syslinux/mbr.bin; do
  [ -r "$m" ] && { mbr="$m"; break; }
done
[ -n "$mbr" ] || die "no syslinux mbr.bin: apt-get install syslinux-common"
kernel="$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -1 || true)"
[ -n "$kernel" ] || die "no /boot/vmlinuz-*: apt-get install linux-image-amd64"
[ -r "$kernel" ] || die "$kernel is not readable"
kver="${kernel#/boot/vmlinuz-}"
[ -x /bin/busybox ] || die "need a static busybox at /bin/busybox: apt-get install busybox-static"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp" "$vhd.$$.tmp"' EXIT
# The initramfs: busybox and the virtio block modules, as guest/build.sh.
. "$here/initramfs.sh"
# The IDE CD drive's modules too: a VM's DVD (an ISO on the volume) reads
# as /dev/sr0.
INITRAMFS_EXTRA_MODULES="scsi/scsi_common scsi/scsi_mod ata/libata ata/ata_piix cdrom/cdrom scsi/sr_mod" \
make_initramfs /bin/busybox "$kver" "$here/template-init" "$tmp/initrd.img" \
  sh mount insmod dd cat echo sleep tr head hexdump printf sync ip udhcpc grep chmod

cat > "$tmp/syslinux.cfg" <<'CFG'
SERIAL 0 115200
DEFAULT kayo
PROMPT 0
TIMEOUT 0
LABEL kayo
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND console=ttyS0,115200 panic=-1 quiet no_timer_check
CFG

# The partition as its own file (mkfs.fat -h: its boot sector records the
# 2048 sectors before it, which syslinux's boot sector adds to find
# ldlinux.sys), filled with mtools and made bootable, then placed.
start=2048
disk_mib=64
part_sectors=$(( disk_mib * 2048 - start ))
part="$tmp/part.img"
truncate -s $(( part_sectors * 512 )) "$part"
mkfs.fat -F 16 -h "$start" -n KAYOTMPL "$part" >/dev/null
mcopy -i "$part" "$kernel" ::/vmlinuz
mcopy -i "$part" "$tmp/initrd.img" ::/initrd.img
mcopy -i "$part" "$tmp/syslinux.cfg" ::/syslinux.cfg
syslinux --install "$part"

img="$tmp/disk.img"
truncate -s $(( disk_mib << 20 )) "$img"
echo "start=$start, size=$part_sectors, type=6, bootable" | sfdisk --quiet --label dos "$img"
dd if="$mbr" of="$img" bs=440 count=1 conv=notrunc status=none
dd if="$part" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
# A name of its own, then an atomic rename: concurrent builds (tests of
# several packages) never see or leave a half-written template.
qemu-img convert -f raw -O vpc -o subformat=dynamic "$img" "$vhd.$$.tmp"
mv "$vhd.$$.tmp" "$vhd"
echo "guest: $vhd (bootable template: syslinux, $kver, $(du -k "$vhd" | cut -f1) KiB)"
