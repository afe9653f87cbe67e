// Package lunprobe recognises what a LUN holds from its first and last MiB:
// partition tables, encryption and volume-manager headers, disk-image
// containers and file systems, at the offsets their own formats use (the
// ones blkid probes). It is pure: callers read the two windows (Read) and
// decide what a finding means.
package lunprobe

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Window is how much of each end of a device Probe looks at.
const Window = 1 << 20

// Ends holds the first and last bytes of a device of Size bytes. Head is
// the first len(Head) bytes, Tail the last len(Tail); on a device smaller
// than two windows they overlap.
type Ends struct {
	Head, Tail []byte
	Size       int64
}

// Read reads the first and last Window bytes of r (size bytes long).
func Read(r io.ReaderAt, size int64) (Ends, error) {
	n := min(size, Window)
	e := Ends{Head: make([]byte, n), Tail: make([]byte, n), Size: size}
	if n == 0 {
		return e, nil
	}
	if _, err := r.ReadAt(e.Head, 0); err != nil && err != io.EOF {
		return e, fmt.Errorf("reading the first %d bytes: %w", n, err)
	}
	if _, err := r.ReadAt(e.Tail, size-n); err != nil && err != io.EOF {
		return e, fmt.Errorf("reading the last %d bytes: %w", n, err)
	}
	return e, nil
}

// at returns the n bytes at device offset off, or nil when they lie outside
// both windows.
func (e Ends) at(off int64, n int) []byte {
	end := off + int64(n)
	if off < 0 || end > e.Size {
		return nil
	}
	if end <= int64(len(e.Head)) {
		return e.Head[off:end]
	}
	if t := e.Size - int64(len(e.Tail)); off >= t {
		return e.Tail[off-t : end-t]
	}
	return nil
}

func (e Ends) is(off int64, magic string) bool {
	b := e.at(off, len(magic))
	return b != nil && string(b) == magic
}

func (e Ends) le32(off int64) (uint32, bool) {
	b := e.at(off, 4)
	if b == nil {
		return 0, false
	}
	return binary.LittleEndian.Uint32(b), true
}

// FirstNonZero is the device offset of the first non-zero byte in either
// window, or -1 when both are all zero.
func (e Ends) FirstNonZero() int64 {
	if i := slices.IndexFunc(e.Head, func(b byte) bool { return b != 0 }); i >= 0 {
		return int64(i)
	}
	if i := slices.IndexFunc(e.Tail, func(b byte) bool { return b != 0 }); i >= 0 {
		return e.Size - int64(len(e.Tail)) + int64(i)
	}
	return -1
}

// Signature is one thing found.
type Signature struct {
	// Name is the short name users write (force_format_over): "gpt", "luks".
	Name string
	// What says what it is, for messages.
	What string
	// Offset is where on the device the signature was found.
	Offset int64
}

func (s Signature) String() string {
	return fmt.Sprintf("%s (%s at byte %d)", s.Name, s.What, s.Offset)
}

type probe struct {
	name, what string
	find       func(Ends) (off int64, what string, ok bool)
}

// magicAt finds a fixed magic at any of offs (negative: from the end).
func magicAt(magic string, offs ...int64) func(Ends) (int64, string, bool) {
	return func(e Ends) (int64, string, bool) {
		for _, off := range offs {
			if off < 0 {
				off += e.Size
			}
			if e.is(off, magic) {
				return off, "", true
			}
		}
		return 0, "", false
	}
}

// probes is the signature table (Probe sorts what it finds by name).
var probes = []probe{
	{"gpt", "GPT partition table", findGPT},
	{"mbr", "MBR partition table", findMBR},
	{"luks", "LUKS encrypted volume", findLUKS},
	{"lvm2", "LVM2 physical volume", findLVM2},
	{"md", "Linux MD RAID member", findMD},
	{"swap", "Linux swap area", findSwap},
	{"qcow2", "QEMU qcow/qcow2 image", magicAt("QFI\xfb", 0)},
	{"vhd", "VHD image", findVHD},
	{"vhdx", "VHDX image", magicAt("vhdxfile", 0)},
	{"vmdk", "VMDK image", findVMDK},
	{"ext4", "ext2/3/4 file system", findExt},
	{"xfs", "XFS file system", magicAt("XFSB", 0)},
	{"btrfs", "Btrfs file system", magicAt("_BHRfS_M", 65536+64)},
	{"ntfs", "NTFS file system", magicAt("NTFS    ", 3)},
	{"fat", "FAT file system", findFAT},
	{"ocfs2", "OCFS2 file system", magicAt("OCFSV2", 2*512, 2*1024, 2*2048, 2*4096)},
	{"gfs2", "GFS2 file system", findGFS2},
	{"zfs", "ZFS pool member", findZFS},
}

// Names lists every name Probe can return.
func Names() []string {
	var out []string
	for _, p := range probes {
		if p.name == "ext4" {
			out = append(out, "ext2", "ext3")
		}
		out = append(out, p.name)
	}
	slices.Sort(out)
	return out
}

// Probe returns every known signature in e, one per name, sorted by name.
// A boot sector's 0x55AA of a FAT or NTFS file system, or the protective
// MBR of a GPT disk, is not reported as a separate MBR.
func Probe(e Ends) []Signature {
	var out []Signature
	have := map[string]bool{}
	for _, p := range probes {
		off, what, ok := p.find(e)
		if !ok {
			continue
		}
		name := p.name
		if name == "ext4" {
			name = what
			what = ""
		}
		if what == "" {
			what = p.what
		} else {
			what = p.what + " (" + what + ")"
		}
		out = append(out, Signature{Name: name, What: what, Offset: off})
		have[name] = true
	}
	if have["gpt"] || have["fat"] || have["ntfs"] {
		out = slices.DeleteFunc(out, func(s Signature) bool { return s.Name == "mbr" })
	}
	slices.SortFunc(out, func(a, b Signature) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// JoinNames is the names of sigs joined by commas: what force_format_over
// must say to format over all of them.
func JoinNames(sigs []Signature) string {
	names := make([]string, len(sigs))
	for i, s := range sigs {
		names[i] = s.Name
	}
	return strings.Join(names, ",")
}

// findGPT: the header ("EFI PART") is at LBA 1 and its backup at the last
// LBA, for 512-byte and 4096-byte sectors.
func findGPT(e Ends) (int64, string, bool) {
	for _, ss := range []int64{512, 4096} {
		if e.is(ss, "EFI PART") {
			return ss, "", true
		}
	}
	for _, ss := range []int64{512, 4096} {
		if e.Size >= 2*ss && e.is(e.Size-ss, "EFI PART") {
			return e.Size - ss, "backup header", true
		}
	}
	return 0, "", false
}

// findMBR: 0x55AA at 510 and a partition table whose entries are each
// empty or well formed (boot flag 0x00 or 0x80), at least one used.
func findMBR(e Ends) (int64, string, bool) {
	if !e.is(510, "\x55\xaa") {
		return 0, "", false
	}
	used := false
	for i := int64(0); i < 4; i++ {
		ent := e.at(446+16*i, 16)
		if ent[0] != 0 && ent[0] != 0x80 {
			return 0, "", false
		}
		if ent[4] != 0 {
			used = true
		}
	}
	if !used {
		return 0, "", false
	}
	return 446, "", true
}

// findLUKS: LUKS1 and LUKS2 primary headers at 0; a LUKS2 secondary
// header ("SKUL") at one of the offsets cryptsetup allows.
func findLUKS(e Ends) (int64, string, bool) {
	if e.is(0, "LUKS\xba\xbe") {
		return 0, "", true
	}
	for off := int64(0x4000); off <= 0x400000; off *= 2 {
		if e.is(off, "SKUL\xba\xbe") {
			return off, "secondary header", true
		}
	}
	return 0, "", false
}

// findLVM2: the label ("LABELONE" … "LVM2 001") in one of the first four
// sectors.
func findLVM2(e Ends) (int64, string, bool) {
	for s := int64(0); s < 4; s++ {
		if e.is(s*512, "LABELONE") && e.is(s*512+24, "LVM2 001") {
			return s * 512, "", true
		}
	}
	return 0, "", false
}

const mdMagic = 0xa92b4efc

// findMD: superblock 1.1 at 0, 1.2 at 4 KiB, 1.0 near the end (8 KiB
// before it, 4 KiB aligned), 0.90 in the last 64 KiB-aligned 64 KiB.
func findMD(e Ends) (int64, string, bool) {
	v1 := func(off int64) bool {
		m, ok := e.le32(off)
		ver, _ := e.le32(off + 4)
		return ok && m == mdMagic && ver == 1
	}
	if v1(0) {
		return 0, "superblock 1.1", true
	}
	if v1(4096) {
		return 4096, "superblock 1.2", true
	}
	if sectors := e.Size >> 9; sectors >= 16 {
		if off := ((sectors - 16) &^ 7) << 9; v1(off) {
			return off, "superblock 1.0", true
		}
	}
	if e.Size >= 128<<10 {
		off := (e.Size &^ 0xffff) - 0x10000
		if b := e.at(off, 4); b != nil && (binary.LittleEndian.Uint32(b) == mdMagic || binary.BigEndian.Uint32(b) == mdMagic) {
			return off, "superblock 0.90", true
		}
	}
	return 0, "", false
}

// findSwap: the signature ends the first page, for the page sizes Linux
// uses.
func findSwap(e Ends) (int64, string, bool) {
	for _, ps := range []int64{4096, 8192, 16384, 65536} {
		for _, m := range []string{"SWAPSPACE2", "SWAP-SPACE"} {
			if e.is(ps-10, m) {
				return ps - 10, "", true
			}
		}
	}
	return 0, "", false
}

// findVHD: the footer ("conectix") in the last 512 bytes (every VHD), its
// copy at 0 (dynamic and differencing disks), or a 511-byte footer of
// old Virtual PC versions.
func findVHD(e Ends) (int64, string, bool) {
	switch {
	case e.Size >= 512 && e.is(e.Size-512, "conectix"):
		return e.Size - 512, "footer", true
	case e.Size >= 511 && e.is(e.Size-511, "conectix"):
		return e.Size - 511, "footer", true
	case e.is(0, "conectix"):
		return 0, "footer copy", true
	}
	return 0, "", false
}

func findVMDK(e Ends) (int64, string, bool) {
	for _, m := range []string{"KDMV", "COWD", "# Disk DescriptorFile"} {
		if e.is(0, m) {
			return 0, "", true
		}
	}
	return 0, "", false
}

// findExt: the superblock at 1 KiB, s_magic 0xEF53 at +56; the feature
// flags tell ext4 (extents, 64bit, flex_bg, csum seed) and ext3 (journal)
// from ext2. Its "what" is the precise name.
func findExt(e Ends) (int64, string, bool) {
	b := e.at(1024, 0x64)
	if b == nil || binary.LittleEndian.Uint16(b[56:]) != 0xEF53 {
		return 0, "", false
	}
	compat := binary.LittleEndian.Uint32(b[0x5C:])
	incompat := binary.LittleEndian.Uint32(b[0x60:])
	switch {
	case incompat&(0x40|0x80|0x200|0x2000) != 0:
		return 1024 + 56, "ext4", true
	case compat&0x4 != 0:
		return 1024 + 56, "ext3", true
	}
	return 1024 + 56, "ext2", true
}

// findFAT: a boot sector (jump instruction, 0x55AA) whose file system
// type field says FAT (at 0x36 for FAT12/16, 0x52 for FAT32).
func findFAT(e Ends) (int64, string, bool) {
	b := e.at(0, 512)
	if b == nil || (b[0] != 0xEB && b[0] != 0xE9) || !bytes.Equal(b[510:], []byte{0x55, 0xaa}) {
		return 0, "", false
	}
	if bytes.HasPrefix(b[0x52:], []byte("FAT32   ")) {
		return 0x52, "FAT32", true
	}
	if bytes.HasPrefix(b[0x36:], []byte("FAT")) {
		return 0x36, strings.TrimSpace(string(b[0x36:0x3e])), true
	}
	return 0, "", false
}

// findGFS2: the superblock at 64 KiB, big-endian magic and type 1.
func findGFS2(e Ends) (int64, string, bool) {
	b := e.at(65536, 8)
	if b != nil && binary.BigEndian.Uint32(b) == 0x01161970 && binary.BigEndian.Uint32(b[4:]) == 1 {
		return 65536, "", true
	}
	return 0, "", false
}

// findZFS: an uberblock (magic 0x00bab10c, either byte order) in the
// uberblock ring (128 KiB into a label) of one of the four 256 KiB vdev
// labels, two at the start and two at the 256 KiB-aligned end.
func findZFS(e Ends) (int64, string, bool) {
	const label = 256 << 10
	end := e.Size &^ (label - 1)
	for _, l := range []int64{0, label, end - 2*label, end - label} {
		if l < 0 {
			continue
		}
		for off := l + 128<<10; off < l+label; off += 1024 {
			b := e.at(off, 8)
			if b != nil && (binary.LittleEndian.Uint64(b) == 0x00bab10c || binary.BigEndian.Uint64(b) == 0x00bab10c) {
				return off, "uberblock", true
			}
		}
	}
	return 0, "", false
}
