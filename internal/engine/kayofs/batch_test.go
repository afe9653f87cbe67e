package kayofs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

func readAll(t *testing.T, v *Volume, p string) []byte {
	t.Helper()
	f, err := v.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, fi.Size)
	if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return b
}

func TestCreateFilesRemoveDir(t *testing.T) {
	vhdData := pattern("vhd", 1, vhdBytes)
	xml := pattern("xml", 2, xmlBytes)
	var many []NewFile
	for i := 0; i < 40; i++ {
		many = append(many, NewFile{Name: fmt.Sprintf("f%02d", i), Data: pattern("m", int64(i), 5000)})
	}
	for _, c := range []struct {
		name        string
		files       []NewFile
		createSyncs int64 // 0: not checked
		removeSyncs int64
	}{
		{"vm", []NewFile{{Name: "VM.vhd", Data: vhdData}, {Name: "VM.xml", Data: xml}}, 2, 2},
		{"empty", nil, 2, 2},
		{"fixed", []NewFile{{Name: "VM.vhd", Allocate: 256 << 20, Off: 256 << 20, Data: vhdData[:512]}}, 0, 0},
		{"big-write", []NewFile{{Name: "big", Off: 3000, Data: pattern("big", 3, 9<<20)}}, 0, 0},
		{"ten", many[:10], 2, 0},
		{"many", many, 0, 0}, // change by change
	} {
		t.Run(c.name, func(t *testing.T) {
			fd, err := CreateImage(filepath.Join(tmpDir(t), "lun.img"), 4<<30)
			if err != nil {
				t.Fatal(err)
			}
			defer fd.Close()
			dev := &countDevice{FileDevice: fd}
			mustFormat(t, dev, FormatOptions{Slots: 2})
			a, b := mustMount(t, dev, "A"), mustMount(t, dev, "B")
			defer a.Unmount()
			defer b.Unmount()
			if err := a.Mkdir("vms"); err != nil {
				t.Fatal(err)
			}
			st0, err := a.Stats()
			if err != nil {
				t.Fatal(err)
			}
			s0 := dev.syncs.Load()
			fs, err := a.CreateFiles("vms/VM", c.files)
			if err != nil {
				t.Fatal(err)
			}
			if got := dev.syncs.Load() - s0; c.createSyncs > 0 && got != c.createSyncs {
				t.Errorf("CreateFiles: %d syncs, want %d", got, c.createSyncs)
			}
			if len(fs) != len(c.files) {
				t.Fatalf("%d files back", len(fs))
			}
			for i, nf := range c.files {
				want := make([]byte, max(nf.Allocate, nf.Off+int64(len(nf.Data))))
				copy(want[nf.Off:], nf.Data)
				for _, v := range []*Volume{a, b} { // b: another node's view
					if got := readAll(t, v, "vms/VM/"+nf.Name); !bytes.Equal(got, want) {
						t.Fatalf("%s: content differs (%d bytes, want %d)", nf.Name, len(got), len(want))
					}
				}
				if fi, err := fs[i].Stat(); err != nil || fi.Size != int64(len(want)) {
					t.Fatalf("returned handle: %+v %v", fi, err)
				}
			}
			mustCheck(t, dev)
			if _, err := b.CreateFiles("vms/VM", nil); !errors.Is(err, ErrExist) {
				t.Fatalf("second CreateFiles: %v", err)
			}
			s0 = dev.syncs.Load()
			if err := b.RemoveDir("vms/VM"); err != nil {
				t.Fatal(err)
			}
			if got := dev.syncs.Load() - s0; c.removeSyncs > 0 && got != c.removeSyncs {
				t.Errorf("RemoveDir: %d syncs, want %d", got, c.removeSyncs)
			}
			for _, v := range []*Volume{a, b} {
				if _, err := v.Stat("vms/VM"); !errors.Is(err, ErrNotExist) {
					t.Fatalf("removed directory: %v", err)
				}
			}
			for _, f := range fs {
				if _, err := f.Stat(); !errors.Is(err, ErrStale) {
					t.Fatalf("handle of a removed file: %v", err)
				}
			}
			mustCheck(t, dev)
			st, err := a.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.FreeBytes != st0.FreeBytes {
				t.Fatalf("after RemoveDir: %d bytes free, %d before CreateFiles", st.FreeBytes, st0.FreeBytes)
			}
			if ents, err := a.ReadDir("vms"); err != nil || len(ents) != 0 {
				t.Fatalf("vms holds %v (%v)", ents, err)
			}
		})
	}
}

func TestCreateFilesRemoveDirRefuse(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	v := mustMount(t, dev, "A")
	defer v.Unmount()
	if err := v.MkdirAll("d/sub"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Create("file"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		do    func() error
		isErr error
	}{
		{"dir exists", func() error { _, err := v.CreateFiles("d", nil); return err }, ErrExist},
		{"file in the way", func() error { _, err := v.CreateFiles("file", nil); return err }, ErrExist},
		{"no parent", func() error { _, err := v.CreateFiles("x/y", nil); return err }, ErrNotExist},
		{"bad name", func() error { _, err := v.CreateFiles("n", []NewFile{{Name: "a/b"}}); return err }, ErrInvalidPath},
		{"twice", func() error { _, err := v.CreateFiles("n", []NewFile{{Name: "a"}, {Name: "a"}}); return err }, ErrInvalid},
		{"negative", func() error { _, err := v.CreateFiles("n", []NewFile{{Name: "a", Off: -1}}); return err }, ErrInvalid},
		{"subdirectory", func() error { return v.RemoveDir("d") }, ErrNotEmpty},
		{"not a dir", func() error { return v.RemoveDir("file") }, ErrNotDir},
		{"missing", func() error { return v.RemoveDir("nope") }, ErrNotExist},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.do(); !errors.Is(err, c.isErr) {
				t.Fatalf("got %v, want %v", err, c.isErr)
			}
		})
	}
	if _, err := v.Stat("n"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("a refused CreateFiles left %v", err)
	}
	if _, err := v.Stat("d/sub"); err != nil {
		t.Fatalf("a refused RemoveDir removed: %v", err)
	}
	mustCheck(t, dev)
}

// RemoveDirOnly removes a directory holding only the named files (some
// missing) and refuses, changing nothing, when anything else is there.
func TestRemoveDirOnly(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	v := mustMount(t, dev, "A")
	defer v.Unmount()
	if _, err := v.CreateFiles("VM", []NewFile{{Name: "VM.vhd", Data: []byte("v")}, {Name: "VM.xml", Data: []byte("x")},
		{Name: "notes.txt", Data: []byte("mine")}}); err != nil {
		t.Fatal(err)
	}
	ours := []string{"VM.vhd", "VM.xml", "VM.vsv"}
	err := v.RemoveDirOnly("VM", ours)
	if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "notes.txt") {
		t.Fatalf("with a foreign file: got %v, want ErrNotEmpty naming notes.txt", err)
	}
	for _, f := range []string{"VM/VM.vhd", "VM/VM.xml", "VM/notes.txt"} {
		if _, err := v.Stat(f); err != nil {
			t.Fatalf("a refused RemoveDirOnly removed %s: %v", f, err)
		}
	}
	if err := v.Remove("VM/notes.txt"); err != nil {
		t.Fatal(err)
	}
	if err := v.RemoveDirOnly("VM", ours); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Stat("VM"); !errors.Is(err, ErrNotExist) {
		t.Fatalf("after RemoveDirOnly: %v", err)
	}
	if err := v.RemoveDirOnly("VM", ours); !errors.Is(err, ErrNotExist) {
		t.Fatalf("again: got %v, want ErrNotExist", err)
	}
	mustCheck(t, dev)
}

// A fragmented file (an extent tree) among small ones: RemoveDir frees it
// in transactions of its own and still removes everything.
func TestRemoveDirFragmented(t *testing.T) {
	dev := newImage(t, 1<<30)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	v := mustMount(t, dev, "A")
	defer v.Unmount()
	st0, err := v.Stats()
	if err != nil {
		t.Fatal(err)
	}
	fs, err := v.CreateFiles("VM", []NewFile{{Name: "a", Data: []byte("a")}, {Name: "frag", Allocate: 64 << 20}, {Name: "z", Data: []byte("z")}})
	if err != nil {
		t.Fatal(err)
	}
	for c := int64(0); c < 300; c++ { // one write into every other cluster
		if _, err := fs[1].WriteAt([]byte("x"), c*2*65536+100); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.RemoveDir("VM"); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, dev)
	st, err := v.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.FreeBytes != st0.FreeBytes {
		t.Fatalf("after RemoveDir: %d bytes free, %d before", st.FreeBytes, st0.FreeBytes)
	}
}
