package kayofs

import (
	"errors"
	"path/filepath"
	"testing"
)

// A detached mount keeps its slot for its node across "processes" (mount
// objects): other nodes take other slots, the node gets its own back, and
// format refuses the volume while any node holds a slot.
func TestDetachKeepsSlot(t *testing.T) {
	dev, err := CreateImage(filepath.Join(t.TempDir(), "lun.img"), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if _, err := Format(dev, FormatOptions{Slots: 4}); err != nil {
		t.Fatal(err)
	}
	slots := map[string]int{}
	for _, n := range []string{"A", "B", "C"} {
		v, err := Mount(dev, n)
		if err != nil {
			t.Fatal(err)
		}
		slots[n] = v.Slot()
		if err := v.Detach(); err != nil {
			t.Fatal(err)
		}
	}
	if slots["A"] == slots["B"] || slots["B"] == slots["C"] || slots["A"] == slots["C"] {
		t.Fatalf("detached slots were reused by other nodes: %v", slots)
	}
	for _, n := range []string{"C", "A", "B"} {
		v, err := Mount(dev, n)
		if err != nil {
			t.Fatal(err)
		}
		if v.Slot() != slots[n] {
			t.Fatalf("%s came back in slot %d, had %d", n, v.Slot(), slots[n])
		}
		if err := v.Detach(); err != nil {
			t.Fatal(err)
		}
	}
	info, err := Slots(dev)
	if err != nil {
		t.Fatal(err)
	}
	if info[slots["A"]].State != "detached" || info[slots["A"]].Node != "A" {
		t.Fatalf("slot of A: %+v", info[slots["A"]])
	}
	if _, err := Format(dev, FormatOptions{Slots: 4, Force: true}); !errors.Is(err, ErrMounted) {
		t.Fatalf("format over detached mounts: %v, want ErrMounted", err)
	}
	// Unmount frees the slot; then format is allowed (forced over Kayo FS).
	for _, n := range []string{"A", "B", "C"} {
		v, err := Mount(dev, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Unmount(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Format(dev, FormatOptions{Slots: 4, Force: true}); err != nil {
		t.Fatal(err)
	}
	if probs, err := Check(dev); err != nil || len(probs) != 0 {
		t.Fatalf("Check: %v %v", probs, err)
	}
}
