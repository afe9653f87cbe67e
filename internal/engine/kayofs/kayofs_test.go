package kayofs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// tmpDir prefers tmpfs (/dev/shm) so syncs are cheap and huge sparse files work.
func tmpDir(t testing.TB) string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		d, err := os.MkdirTemp("/dev/shm", "kayofs-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d
		}
	}
	return t.TempDir()
}

func newImage(t testing.TB, size int64) *FileDevice {
	t.Helper()
	d, err := CreateImage(filepath.Join(tmpDir(t), "lun.img"), size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func mustFormat(t testing.TB, dev Device, o FormatOptions) *Superblock {
	t.Helper()
	sb, err := Format(dev, o)
	if err != nil {
		t.Fatalf("format: %v", err)
	}
	return sb
}

func mustMount(t testing.TB, dev Device, node string) *Volume {
	t.Helper()
	v, err := Mount(dev, node)
	if err != nil {
		t.Fatalf("mount %s: %v", node, err)
	}
	return v
}

func mustCheck(t testing.TB, dev Device) {
	t.Helper()
	probs, err := Check(dev)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	for _, p := range probs {
		t.Errorf("check: %s", p)
	}
}

func TestFormatMountUnmount(t *testing.T) {
	for _, slots := range []int{2, 16} {
		t.Run(fmt.Sprint(slots), func(t *testing.T) {
			dev := newImage(t, 1<<30)
			sb := mustFormat(t, dev, FormatOptions{Slots: slots, Label: "VMSTORE"})
			if sb.SlotCount != uint32(slots) || sb.Label != "VMSTORE" {
				t.Fatalf("superblock %+v", sb)
			}
			mustCheck(t, dev)
			var vols []*Volume
			seen := map[int]bool{}
			for i := 0; i < slots; i++ {
				v := mustMount(t, dev, fmt.Sprintf("Y-%02d-2k8x64", i))
				if seen[v.Slot()] {
					t.Fatalf("slot %d handed out twice", v.Slot())
				}
				seen[v.Slot()] = true
				vols = append(vols, v)
			}
			if _, err := Mount(dev, "extra"); !errors.Is(err, ErrNoSlot) {
				t.Fatalf("mount beyond slots: %v", err)
			}
			if _, err := Mount(dev, "Y-00-2k8x64"); !errors.Is(err, ErrMounted) {
				t.Fatalf("double mount of one node: %v", err)
			}
			si, err := Slots(dev)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range si {
				if s.State != "mounted" {
					t.Fatalf("slot %+v", s)
				}
			}
			for _, v := range vols {
				if err := v.Unmount(); err != nil {
					t.Fatal(err)
				}
			}
			si, _ = Slots(dev)
			for _, s := range si {
				if s.State != "free" {
					t.Fatalf("slot after unmount %+v", s)
				}
			}
			mustCheck(t, dev)
		})
	}
}

func TestFilesAPI(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 2, Label: "VMSTORE"})
	v := mustMount(t, dev, "Y-21-2k8x64")
	defer v.Unmount()
	st0, err := v.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Mkdir("WEB01"); err != nil {
		t.Fatal(err)
	}
	f, err := v.Create("WEB01/WEB01.vhd")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Create("WEB01/WEB01.vhd"); !errors.Is(err, ErrExist) {
		t.Fatalf("create twice: %v", err)
	}
	if err := f.Allocate(10 << 20); err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	if fi.Size != 10<<20 || fi.Allocated != 10<<20 {
		t.Fatalf("after allocate: %+v", fi)
	}
	st1, _ := v.Stats()
	if st1.FreeBytes != st0.FreeBytes-10<<20 {
		t.Fatalf("free %d -> %d", st0.FreeBytes, st1.FreeBytes)
	}
	buf := make([]byte, 1<<20)
	if _, err := f.ReadAt(buf, 3<<20); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Fatal("unwritten extent does not read as zeros")
	}
	// writes at odd offsets, in allocated space and past the end
	model := make([]byte, 12<<20)
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 50; i++ {
		off := rng.Int63n(int64(len(model)) - 70000)
		n := rng.Intn(70000) + 1
		p := make([]byte, n)
		rng.Read(p)
		if _, err := f.WriteAt(p, off); err != nil {
			t.Fatal(err)
		}
		copy(model[off:], p)
	}
	sz, _ := f.Size()
	got := make([]byte, sz)
	if n, err := f.ReadAt(got, 0); err != nil && err != io.EOF || int64(n) != sz {
		t.Fatalf("read %d %v", n, err)
	}
	if !bytes.Equal(got, model[:sz]) {
		t.Fatal("data mismatch")
	}
	mustCheck(t, dev)
	// truncate down to an odd size then grow: the tail reads as zeros
	if err := f.Truncate(5<<20 + 123); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(6 << 20); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, 6<<20)
	f.ReadAt(got, 0)
	copy(model[5<<20+123:], make([]byte, 7<<20))
	if !bytes.Equal(got, model[:6<<20]) {
		t.Fatal("data mismatch after truncate")
	}
	mustCheck(t, dev)
	// rename, readdir, stat
	if err := v.Rename("WEB01/WEB01.vhd", "WEB01/disk.vhd"); err != nil {
		t.Fatal(err)
	}
	g, _ := v.Create("WEB01/other")
	g.WriteAt([]byte("hello"), 0)
	if err := v.Rename("WEB01/other", "WEB01/disk.vhd"); err != nil { // replaces
		t.Fatal(err)
	}
	if _, err := f.ReadAt(got[:1], 0); !errors.Is(err, ErrStale) {
		t.Fatalf("replaced file handle: %v", err)
	}
	ents, err := v.ReadDir("WEB01")
	if err != nil || len(ents) != 1 || ents[0].Name != "disk.vhd" || ents[0].Size != 5 {
		t.Fatalf("readdir %+v %v", ents, err)
	}
	if err := v.Remove("WEB01"); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("remove non-empty dir: %v", err)
	}
	if err := v.MkdirAll("A/B/C"); err != nil {
		t.Fatal(err)
	}
	if err := v.Rename("A", "A/B/C/D"); !errors.Is(err, ErrInvalidPath) {
		t.Fatalf("rename into itself: %v", err)
	}
	for _, p := range []string{"", "/abs", "a/../b", "a//b", "a/", ".", "a/./b", string(make([]byte, 300))} {
		if _, err := v.Create(p); !errors.Is(err, ErrInvalidPath) {
			t.Errorf("path %q: %v", p, err)
		}
	}
	if err := v.Remove("WEB01/disk.vhd"); err != nil {
		t.Fatal(err)
	}
	if err := v.Remove("WEB01"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Stat("WEB01"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("stat removed: %v", err)
	}
	st2, _ := v.Stats()
	if st2.FreeBytes != st0.FreeBytes {
		t.Fatalf("space leaked: free %d, was %d", st2.FreeBytes, st0.FreeBytes)
	}
	if err := v.SetLabel("NEWLABEL"); err != nil {
		t.Fatal(err)
	}
	if sb, _ := ReadSuperblock(dev); sb.Label != "NEWLABEL" {
		t.Fatalf("label %q", sb.Label)
	}
	mustCheck(t, dev)
}

// A file with no extents at all (size from Truncate only) reads as zeros.
func TestReadHoleOnlyFile(t *testing.T) {
	dev := newImage(t, 256<<20)
	mustFormat(t, dev, FormatOptions{Slots: 1})
	v := mustMount(t, dev, "n")
	defer v.Unmount()
	f, _ := v.Create("sparse")
	if err := f.Truncate(3 << 20); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 3<<20)
	p[5] = 1
	if n, err := f.ReadAt(p, 0); n != len(p) || err != nil || !bytes.Equal(p, make([]byte, len(p))) {
		t.Fatalf("read %d %v", n, err)
	}
}
