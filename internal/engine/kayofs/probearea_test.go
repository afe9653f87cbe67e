package kayofs

import (
	"errors"
	"testing"
	"time"
)

// Stamps written by two nodes into the validation area read back by slot,
// and the area is spare: the volume checks clean and on-disk leases (which
// use records 0..131 of the same area) still join and release after it.
func TestProbeStampsRoundTripBesideLeases(t *testing.T) {
	img, dev := newLeaseImage(t)
	if got, err := ReadProbeStamps(img); err != nil || len(got) != 0 {
		t.Fatalf("fresh volume: stamps %v, %v; want none", got, err)
	}
	now := time.Now().UnixNano()
	for _, st := range []ProbeStamp{{Slot: 0, Node: "N1", Seq: 3, UnixNano: now}, {Slot: 63, Node: "N2", Seq: 1, UnixNano: now + 1}} {
		if err := WriteProbeStamp(img, st); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadProbeStamps(img)
	if err != nil {
		t.Fatal(err)
	}
	want := []ProbeStamp{{Slot: 0, Node: "N1", Seq: 3, UnixNano: now}, {Slot: 63, Node: "N2", Seq: 1, UnixNano: now + 1}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("stamps %+v, want %+v", got, want)
	}
	dd, err := OpenDeviceDirect(img)
	if err != nil {
		t.Fatal(err)
	}
	defer dd.Close()
	lm, err := NewDiskLeases(testLeaseOpts(t.Logf))(dd, "N1")
	if err != nil {
		t.Fatalf("on-disk leases after stamps: %v", err)
	}
	if err := lm.Close(); err != nil {
		t.Fatal(err)
	}
	if again, err := ReadProbeStamps(img); err != nil || len(again) != 2 {
		t.Fatalf("after a lease: stamps %+v, %v; want the two", again, err)
	}
	if probs, err := Check(dev); err != nil || len(probs) != 0 {
		t.Fatalf("check after stamps: %v %v", probs, err)
	}
	if err := WriteProbeStamp(img, ProbeStamp{Slot: 64, Node: "N3"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("slot 64: %v, want ErrInvalid", err)
	}
}

// A device without a Kayo FS has no area; SuperblockOf says so read-only.
func TestProbeAreaNeedsKayoFS(t *testing.T) {
	img := tmpDir(t) + "/blank.img"
	d, err := CreateImage(img, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, size, err := SuperblockOf(img); !errors.Is(err, ErrNotFormatted) || size != 64<<20 {
		t.Fatalf("SuperblockOf blank: size %d, %v; want %d, ErrNotFormatted", size, err, 64<<20)
	}
	if err := WriteProbeStamp(img, ProbeStamp{Slot: 0, Node: "N1"}); !errors.Is(err, ErrNotFormatted) {
		t.Fatalf("stamp on a blank LUN: %v, want ErrNotFormatted", err)
	}
}
