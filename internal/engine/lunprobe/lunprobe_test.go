package lunprobe

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"
)

// image is a sparse in-memory device: only written ranges hold bytes.
type image struct {
	size int64
	b    map[int64]byte
}

func newImage(size int64) *image { return &image{size: size, b: map[int64]byte{}} }

func (m *image) put(off int64, p []byte) *image {
	if off < 0 {
		off += m.size
	}
	for i, c := range p {
		m.b[off+int64(i)] = c
	}
	return m
}

func (m *image) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	for at, c := range m.b {
		if at >= off && at < off+int64(len(p)) {
			p[at-off] = c
		}
	}
	return len(p), nil
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func probeOf(t *testing.T, m *image) []Signature {
	t.Helper()
	e, err := Read(m, m.size)
	if err != nil {
		t.Fatal(err)
	}
	return Probe(e)
}

// One case per signature of the table, each written the way its format
// lays it out (offsets as blkid probes them); Probe must name exactly it.
func TestProbeEachSignature(t *testing.T) {
	const size = 64 << 20
	mbrEntry := func(m *image) *image { return m.put(446, []byte{0x80, 0, 0, 0, 0x83}).put(510, []byte{0x55, 0xaa}) }
	fatBoot := func(m *image, off int64, typ string) *image {
		return m.put(0, []byte{0xEB, 0x3C, 0x90}).put(off, []byte(typ)).put(510, []byte{0x55, 0xaa})
	}
	extSB := func(compat, incompat uint32) []byte {
		b := make([]byte, 0x64)
		binary.LittleEndian.PutUint16(b[56:], 0xEF53)
		binary.LittleEndian.PutUint32(b[0x5C:], compat)
		binary.LittleEndian.PutUint32(b[0x60:], incompat)
		return b
	}
	cases := []struct {
		name string
		img  *image
		off  int64
	}{
		{"mbr", mbrEntry(newImage(size)), 446},
		{"gpt", mbrEntry(newImage(size)).put(512, []byte("EFI PART")).put(-512, []byte("EFI PART")), 512},
		{"gpt", newImage(size).put(-512, []byte("EFI PART")), size - 512},   // backup header only
		{"gpt", newImage(size).put(4096, []byte("EFI PART")), 4096},         // 4K sectors
		{"gpt", newImage(size).put(-4096, []byte("EFI PART")), size - 4096}, // 4K backup
		{"luks", newImage(size).put(0, []byte("LUKS\xba\xbe\x00\x02")), 0},
		{"luks", newImage(size).put(0x4000, []byte("SKUL\xba\xbe\x00\x02")), 0x4000},
		{"lvm2", newImage(size).put(512, []byte("LABELONE")).put(512+24, []byte("LVM2 001")), 512},
		{"md", newImage(size).put(4096, append(le32(0xa92b4efc), le32(1)...)), 4096},             // 1.2
		{"md", newImage(size).put(0, append(le32(0xa92b4efc), le32(1)...)), 0},                   // 1.1
		{"md", newImage(size).put(size-8192, append(le32(0xa92b4efc), le32(1)...)), size - 8192}, // 1.0
		{"md", newImage(size).put(size-65536, le32(0xa92b4efc)), size - 65536},                   // 0.90
		{"swap", newImage(size).put(4096-10, []byte("SWAPSPACE2")), 4086},
		{"swap", newImage(size).put(65536-10, []byte("SWAP-SPACE")), 65526},
		{"qcow2", newImage(size).put(0, []byte("QFI\xfb\x00\x00\x00\x03")), 0},
		{"vhd", newImage(size).put(-512, []byte("conectix")), size - 512},
		{"vhd", newImage(size).put(0, []byte("conectix")), 0},
		{"vhdx", newImage(size).put(0, []byte("vhdxfile")), 0},
		{"vmdk", newImage(size).put(0, []byte("KDMV")), 0},
		{"vmdk", newImage(size).put(0, []byte("# Disk DescriptorFile\n")), 0},
		{"ext2", newImage(size).put(1024, extSB(0, 0)), 1080},
		{"ext3", newImage(size).put(1024, extSB(0x4, 0)), 1080},
		{"ext4", newImage(size).put(1024, extSB(0x4, 0x40)), 1080},
		{"xfs", newImage(size).put(0, []byte("XFSB\x00\x00\x10\x00")), 0},
		{"btrfs", newImage(size).put(65536+64, []byte("_BHRfS_M")), 65600},
		{"ntfs", newImage(size).put(0, []byte{0xEB, 0x52, 0x90}).put(3, []byte("NTFS    ")).put(510, []byte{0x55, 0xaa}), 3},
		{"fat", fatBoot(newImage(size), 0x36, "FAT16   "), 0x36},
		{"fat", fatBoot(newImage(size), 0x52, "FAT32   "), 0x52},
		{"ocfs2", newImage(size).put(8192, []byte("OCFSV2")), 8192},
		{"ocfs2", newImage(size).put(1024, []byte("OCFSV2")), 1024},
		{"gfs2", newImage(size).put(65536, append(be32(0x01161970), be32(1)...)), 65536},
		{"zfs", newImage(size).put(128<<10+3072, binary.LittleEndian.AppendUint64(nil, 0x00bab10c)), 128<<10 + 3072},
		{"zfs", newImage(size).put(size-256<<10+128<<10, binary.BigEndian.AppendUint64(nil, 0x00bab10c)), size - 128<<10},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := probeOf(t, c.img)
			if len(got) != 1 || got[0].Name != c.name || got[0].Offset != c.off {
				t.Fatalf("probe = %v, want only %s at byte %d", got, c.name, c.off)
			}
			if !slices.Contains(Names(), c.name) {
				t.Fatalf("Names() %v lacks %q", Names(), c.name)
			}
		})
		seen[c.name] = true
	}
	for _, n := range Names() {
		if !seen[n] {
			t.Errorf("signature %q has no test case", n)
		}
	}
}

// Near misses are not signatures: a 0x55AA with a garbage partition
// table, an MD magic with an unknown major version, a signature past the
// windows Probe reads.
func TestProbeNearMisses(t *testing.T) {
	const size = 64 << 20
	for name, m := range map[string]*image{
		"zero":            newImage(size),
		"55aa only":       newImage(size).put(510, []byte{0x55, 0xaa}),
		"bad boot flag":   newImage(size).put(446, []byte{0x12, 0, 0, 0, 0x83}).put(510, []byte{0x55, 0xaa}),
		"md version 7":    newImage(size).put(4096, append(le32(0xa92b4efc), le32(7)...)),
		"middle of disk":  newImage(size).put(size/2, []byte("EFI PART")),
		"lvm label alone": newImage(size).put(0, []byte("LABELONE")),
		"fat type no jmp": newImage(size).put(0x36, []byte("FAT16   ")).put(510, []byte{0x55, 0xaa}),
	} {
		if got := probeOf(t, m); len(got) != 0 {
			t.Errorf("%s: probe = %v, want nothing", name, got)
		}
	}
}

// Several signatures are all reported; a GPT's protective MBR and a FAT
// boot sector's 0x55AA are not reported as an MBR of their own.
func TestProbeSeveral(t *testing.T) {
	const size = 64 << 20
	m := newImage(size).put(446, []byte{0, 0, 0, 0, 0xEE}).put(510, []byte{0x55, 0xaa}).
		put(-512, []byte("EFI PART")).put(0, []byte("LUKS\xba\xbe"))
	got := probeOf(t, m)
	if JoinNames(got) != "gpt,luks" {
		t.Fatalf("probe = %v, want gpt and luks", got)
	}
	fat := newImage(size).put(0, []byte{0xEB, 0x3C, 0x90}).put(0x36, []byte("FAT12   ")).
		put(446, []byte{0x80, 0, 0, 0, 0x06}).put(510, []byte{0x55, 0xaa})
	if got := probeOf(t, fat); JoinNames(got) != "fat" {
		t.Fatalf("probe = %v, want fat alone", got)
	}
}

// Devices smaller than the two windows: the windows overlap, nothing
// reads out of range.
func TestProbeSmallDevices(t *testing.T) {
	for _, size := range []int64{0, 1, 511, 512, 4096, 100 << 10, Window + 1} {
		m := newImage(size)
		if size >= 8 {
			m.put(-min(size, 512), []byte("conectix"))
		}
		got := probeOf(t, m)
		if size >= 512 && JoinNames(got) != "vhd" {
			t.Errorf("size %d: probe = %v, want vhd", size, got)
		}
	}
}

func TestFirstNonZero(t *testing.T) {
	const size = 8 << 20
	e, _ := Read(newImage(size), size)
	if got := e.FirstNonZero(); got != -1 {
		t.Fatalf("zero device: %d", got)
	}
	e, _ = Read(newImage(size).put(-3, []byte{1}), size)
	if got := e.FirstNonZero(); got != size-3 {
		t.Fatalf("tail byte: %d, want %d", got, size-3)
	}
	e, _ = Read(newImage(size).put(size/2, bytes.Repeat([]byte{1}, 8)), size)
	if got := e.FirstNonZero(); got != -1 {
		t.Fatalf("a byte outside the windows counts: %d", got)
	}
}

// Probe reads bytes from any device: whatever they are, it never panics,
// and every signature it reports lies inside the device.
func FuzzProbe(f *testing.F) {
	f.Add(uint32(64<<20), []byte("EFI PART"), []byte("conectix"))
	f.Add(uint32(600), []byte{0xEB, 0x3C, 0x90}, []byte{0x55, 0xaa})
	f.Add(uint32(0), []byte{}, []byte{})
	f.Fuzz(func(t *testing.T, size uint32, head, tail []byte) {
		n := int64(size % (8 << 20))
		m := newImage(n)
		if int64(len(head)) <= n {
			m.put(0, head)
		}
		if int64(len(tail)) <= n {
			m.put(n-int64(len(tail)), tail)
		}
		for _, s := range probeOf(t, m) {
			if s.Offset < 0 || s.Offset >= max(n, 1) {
				t.Fatalf("%v outside a device of %d bytes", s, n)
			}
		}
	})
}
