package kayofs

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestFormatRefusesExistingFileSystems(t *testing.T) {
	type sig struct {
		name  string
		write func(dev Device)
	}
	put := func(dev Device, off int64, b []byte) { dev.WriteAt(b, off) }
	sigs := []sig{
		{"ntfs", func(d Device) { put(d, 3, []byte("NTFS    ")); put(d, 510, []byte{0x55, 0xaa}) }},
		{"ext4", func(d Device) {
			b := make([]byte, 1024)
			binary.LittleEndian.PutUint16(b[56:], 0xEF53)
			binary.LittleEndian.PutUint32(b[0x5C:], 0x4)  // has_journal
			binary.LittleEndian.PutUint32(b[0x60:], 0x40) // extents
			put(d, 1024, b)
		}},
		{"ext3", func(d Device) {
			b := make([]byte, 1024)
			binary.LittleEndian.PutUint16(b[56:], 0xEF53)
			binary.LittleEndian.PutUint32(b[0x5C:], 0x4)
			put(d, 1024, b)
		}},
		{"ext2", func(d Device) { put(d, 1024+56, []byte{0x53, 0xEF}) }},
		{"xfs", func(d Device) { put(d, 0, []byte("XFSB\x00\x00\x10\x00")) }},
		{"ocfs2", func(d Device) { put(d, 8192, []byte("OCFSV2")) }},
		{"gfs2", func(d Device) {
			b := make([]byte, 8)
			binary.BigEndian.PutUint32(b, 0x01161970)
			binary.BigEndian.PutUint32(b[4:], 1)
			put(d, 65536, b)
		}},
		{"kayofs", func(d Device) {
			if _, err := Format(d, FormatOptions{Slots: 2}); err != nil {
				panic(err)
			}
		}},
	}
	for _, s := range sigs {
		t.Run(s.name, func(t *testing.T) {
			dev := newImage(t, 256<<20)
			s.write(dev)
			if got, _ := Probe(dev); got != s.name {
				t.Fatalf("probe = %q, want %q", got, s.name)
			}
			_, err := Format(dev, FormatOptions{Slots: 4})
			if !errors.Is(err, ErrExistingFS) {
				t.Fatalf("format over %s: %v", s.name, err)
			}
			if _, err := Format(dev, FormatOptions{Slots: 4, Force: true}); err != nil {
				t.Fatalf("forced format over %s: %v", s.name, err)
			}
			if got, _ := Probe(dev); got != "kayofs" {
				t.Fatalf("after forced format probe = %q", got)
			}
			sb, _ := ReadSuperblock(dev)
			if sb.SlotCount != 4 {
				t.Fatalf("slot count %d", sb.SlotCount)
			}
			mustCheck(t, dev)
		})
	}
}

func TestFormatRefusesMountedVolume(t *testing.T) {
	dev := newImage(t, 256<<20)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	v := mustMount(t, dev, "Y-22-2k8x64")
	// another opener of the same image (as another node would)
	other, err := OpenDevice(dev.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := Format(other, FormatOptions{Slots: 2, Force: true}); !errors.Is(err, ErrMounted) {
		t.Fatalf("format of a mounted volume with force: %v", err)
	}
	if err := Recover(other, v.Slot()); !errors.Is(err, ErrMounted) {
		t.Fatalf("recover of a live slot: %v", err)
	}
	// a crashed node leaves its slot marked: refused without force
	v.Crash()
	if _, err := Format(other, FormatOptions{Slots: 2}); !errors.Is(err, ErrMounted) {
		t.Fatalf("format with a stale mount record: %v", err)
	}
	if err := Recover(other, v.Slot()); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, other)
	if _, err := Format(other, FormatOptions{Slots: 2}); !errors.Is(err, ErrExistingFS) {
		t.Fatalf("format over kayofs without force: %v", err)
	}
	if _, err := OpenDevice("relative/path"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("relative device path: %v", err)
	}
}

func TestFormatOptionValidation(t *testing.T) {
	dev := newImage(t, 256<<20)
	for _, o := range []FormatOptions{
		{BlockSize: 3000, Slots: 2}, {BlockSize: 131072, Slots: 2}, {BlockSize: 2048, Slots: 2},
		{Slots: 65}, {Slots: -1}, {Slots: 2, Label: "this label is definitely longer than 32 bytes"},
	} {
		if _, err := Format(dev, o); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", o, err)
		}
	}
	small := newImage(t, 1<<20)
	if _, err := Format(small, FormatOptions{Slots: 2}); !errors.Is(err, ErrInvalid) {
		t.Errorf("tiny device: %v", err)
	}
	for _, bs := range []int{4096, 8192, 65536} {
		d := newImage(t, 2<<30)
		sb := mustFormat(t, d, FormatOptions{BlockSize: bs, Slots: 3})
		v := mustMount(t, d, "n1")
		f, err := v.Create("x")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("abc"), int64(bs)*5+7); err != nil {
			t.Fatal(err)
		}
		if err := f.Allocate(100 << 20); err != nil {
			t.Fatal(err)
		}
		v.Unmount()
		if int(sb.BlockSize) != bs {
			t.Fatal(sb.BlockSize)
		}
		mustCheck(t, d)
	}
}
