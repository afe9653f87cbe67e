package kayofs

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
)

// A VHD made through a Recorder and CreateFiles is the VHD vhd.Create
// writes into a file directly, byte for byte, and opens as one.
func TestRecorderVHD(t *testing.T) {
	dev := newImage(t, 4<<30)
	mustFormat(t, dev, FormatOptions{Slots: 2})
	v := mustMount(t, dev, "A")
	defer v.Unmount()
	uuid := vhd.UUID{1, 2, 3}
	now := time.Unix(1700000000, 0)
	for _, c := range []struct {
		name string
		typ  vhd.DiskType
		size int64
	}{
		{"dynamic", vhd.Dynamic, 10 << 30},
		{"fixed", vhd.Fixed, 64 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			opts := vhd.Options{Type: c.typ, Size: c.size, Time: now, UUID: uuid}
			var rec Recorder
			if _, err := vhd.Create(&rec, opts); err != nil {
				t.Fatal(err)
			}
			nf, err := rec.NewFile("a.vhd")
			if err != nil {
				t.Fatal(err)
			}
			fs, err := v.CreateFiles(c.name, []NewFile{nf})
			if err != nil {
				t.Fatal(err)
			}
			f, err := v.Create(c.name + "/direct.vhd")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := vhd.Create(vmFile{f}, opts); err != nil {
				t.Fatal(err)
			}
			a, b := readAll(t, v, c.name+"/a.vhd"), readAll(t, v, c.name+"/direct.vhd")
			if !bytes.Equal(a, b) {
				t.Fatalf("recorded VHD (%d bytes) differs from the direct one (%d bytes)", len(a), len(b))
			}
			fi, err := fs[0].Stat()
			if err != nil {
				t.Fatal(err)
			}
			d, err := vhd.Open(vmFile{fs[0]}, fi.Size)
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := vhd.RoundSize(c.size); d.Size() != want {
				t.Fatalf("size %d, want %d", d.Size(), want)
			}
		})
	}
	mustCheck(t, dev)
}

// vmFile is the engine's adapter (vms.go): kayofs allocation for vhd.
type vmFile struct{ *File }

func (f vmFile) Allocate(off, n int64) error { return f.File.Allocate(off + n) }

func TestRecorderRanges(t *testing.T) {
	var r Recorder
	for _, w := range []struct {
		off  int64
		p    string
		fail bool
	}{
		{10, "abc", false},
		{13, "de", false}, // touching
		{8, "xyz", false}, // overlapping in front
		{20, "gap", true}, // leaves a gap
		{0, "no", true},   // gap in front
		{-1, "neg", true},
	} {
		_, err := r.WriteAt([]byte(w.p), w.off)
		if (err != nil) != w.fail || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Fatalf("write %q at %d: %v", w.p, w.off, err)
		}
	}
	if err := r.Allocate(0, 32); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 40)
	n, err := r.ReadAt(got, 0)
	if n != 32 || err == nil {
		t.Fatalf("read %d, %v", n, err)
	}
	want := make([]byte, 32)
	copy(want[8:], "xyzbcde")
	if !bytes.Equal(got[:n], want) {
		t.Fatalf("read %q", got[:n])
	}
	if err := r.Truncate(12); !errors.Is(err, ErrInvalid) {
		t.Fatalf("truncate into the recorded bytes: %v", err)
	}
	nf, err := r.NewFile("f")
	if err != nil || nf.Allocate != 32 || nf.Off != 8 || string(nf.Data) != "xyzbcde" {
		t.Fatalf("%+v %v", nf, err)
	}
	if err := r.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if nf, _ := r.NewFile("f"); nf.Allocate != 0 || len(nf.Data) != 0 {
		t.Fatalf("after truncate 0: %+v", nf)
	}
}
