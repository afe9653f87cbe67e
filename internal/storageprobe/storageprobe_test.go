package storageprobe

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

func image(t *testing.T) (string, string) {
	t.Helper()
	img := filepath.Join(t.TempDir(), "lun.img")
	d, err := kayofs.CreateImage(img, 128<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	sb, err := kayofs.Format(d, kayofs.FormatOptions{Slots: 4, InodeCount: 256})
	if err != nil {
		t.Fatal(err)
	}
	if dd, err := kayofs.OpenDeviceDirect(img); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("direct I/O on %s: %v", img, err)
		}
		t.Skipf("direct I/O on %s: %v", img, err)
	} else {
		dd.Close()
	}
	return img, sb.UUIDString()
}

// Two nodes probe one LUN in turn: each takes and releases a lease, writes
// its block, and the second (then the first again) reads the other's.
func TestProbeTwoNodesReadEachOther(t *testing.T) {
	img, id := image(t)
	target := func(node string, slot int, seq uint64) Target {
		return Target{Volume: id, Letter: "O", Path: img, Slot: slot, Node: node, Seq: seq, Leases: LeaseOptions(t.Logf)}
	}
	r1 := Probe(target("N1", 0, 1))
	if r1.Error != "" || !r1.Seen || !r1.Leased || !r1.Wrote || len(r1.ReadFrom) != 0 || r1.UUID != id || r1.SizeBytes != 128<<20 || r1.FSBytes == 0 {
		t.Fatalf("first probe: %+v", r1)
	}
	r2 := Probe(target("N2", 1, 1))
	if r2.Error != "" || !slices.Equal(r2.ReadFrom, []string{"N1"}) {
		t.Fatalf("second node: %+v, want it to read N1's block", r2)
	}
	if r1 = Probe(target("N1", 0, 2)); r1.Error != "" || !slices.Equal(r1.ReadFrom, []string{"N2"}) {
		t.Fatalf("first node again: %+v, want it to read N2's block", r1)
	}
}

// A LUN that holds another volume is reported and never written; a LUN
// the node cannot find is not seen.
func TestProbeWrongOrMissingLUN(t *testing.T) {
	img, _ := image(t)
	other := "00000000-0000-0000-0000-000000000001"
	r := Probe(Target{Volume: other, Path: img, Slot: 0, Node: "N1", Seq: 1, Leases: LeaseOptions(t.Logf)})
	if !r.Seen || r.Leased || r.Wrote || !strings.Contains(r.Error, "not "+other) {
		t.Fatalf("another volume's LUN: %+v", r)
	}
	if st, err := kayofs.ReadProbeStamps(img); err != nil || len(st) != 0 {
		t.Fatalf("the wrong LUN was stamped: %+v, %v", st, err)
	}
	r = Probe(Target{Volume: other, Path: filepath.Join(t.TempDir(), "absent"), Node: "N1"})
	if r.Seen || !strings.Contains(r.Error, "cannot be opened here") {
		t.Fatalf("a missing LUN: %+v", r)
	}
}
