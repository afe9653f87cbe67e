// Package guestimage builds the bootable template disk of guest/template.sh
// and reads what its guest prints about the disk it booted from, so
// tests (and the qemu driver's acceptance tests) can prove a VM booted
// its own VHD and not a kernel the host supplied.
package guestimage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// BootPrefix starts the console line the template's init prints once it
// has found its boot disk; BootLine is the whole line.
const BootPrefix = "kayo-guest: booted from disk "

// MarkerSector is the disk sector (in the gap before the partition, empty
// on the template) whose printable bytes the guest prints as
// "kayo-guest: disk marker [...]"; WriteSector is the sector it writes
// "kayo-guest-write id=<boot id>" to ("kayo-guest: wrote sector 2 id=...").
const (
	MarkerSector = 1
	WriteSector  = 2
	// TickSector: the guest's last tick ("kayo-guest-tick id=<boot id>
	// n=<n>"), rewritten every 2 s (guest/template-init).
	TickSector = 3
)

// ErrNotTemplate: the disk does not have the template's layout.
var ErrNotTemplate = errors.New("guestimage: not a template disk (MBR with a FAT16 first partition)")

// Builder runs guest/template.sh once at a time per process user (the
// script rebuilds only when its output is stale).
type Builder struct {
	mu sync.Mutex
	// Root is the repository root (holding guest/template.sh).
	Root string
}

// Build makes (or reuses) the template under Root/guest/out and returns
// the path of template.vhd. Its error names the missing Debian packages
// the script reported.
func (b *Builder) Build(ctx context.Context) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := filepath.Join(b.Root, "guest", "out")
	cmd := exec.CommandContext(ctx, filepath.Join(b.Root, "guest", "template.sh"), out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the template disk (guest/template.sh needs linux-image-amd64, busybox-static, cpio, fdisk, dosfstools, mtools, syslinux, syslinux-common, qemu-utils): %v: %s", err, strings.TrimSpace(string(msg)))
	}
	return filepath.Join(out, "template.vhd"), nil
}

// Volume is what identifies a template disk's boot partition.
type Volume struct {
	Label string // FAT volume label, e.g. KAYOTMPL
	ID    string // FAT volume id, its 4 on-disk bytes in hex (as the guest prints them)
}

// BootLine is the console line a guest booted from this volume prints.
func (v Volume) BootLine() string {
	return fmt.Sprintf("%s/dev/vda1 label=%s volid=%s", BootPrefix, v.Label, v.ID)
}

// ReadVolume reads the MBR of disk (the virtual disk's bytes, e.g. a
// *vhd.Disk) and the FAT16 boot sector of its first partition.
func ReadVolume(disk io.ReaderAt) (Volume, error) {
	mbr := make([]byte, 512)
	if _, err := disk.ReadAt(mbr, 0); err != nil {
		return Volume{}, fmt.Errorf("guestimage: reading the MBR: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xAA {
		return Volume{}, fmt.Errorf("%w: no MBR signature", ErrNotTemplate)
	}
	start := int64(binary.LittleEndian.Uint32(mbr[446+8:]))
	bs := make([]byte, 512)
	if _, err := disk.ReadAt(bs, start*512); err != nil {
		return Volume{}, fmt.Errorf("guestimage: reading the boot sector at sector %d: %w", start, err)
	}
	if string(bs[54:62]) != "FAT16   " {
		return Volume{}, fmt.Errorf("%w: partition at sector %d has file system type %q", ErrNotTemplate, start, bs[54:62])
	}
	return Volume{
		Label: strings.TrimRight(string(bs[43:54]), " "),
		ID:    fmt.Sprintf("%X", bs[39:43]),
	}, nil
}
