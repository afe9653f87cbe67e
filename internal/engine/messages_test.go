package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A NUL or other control character in a label is named as such (it was
// reported as "at most 32 bytes").
func TestLabelControlCharacters(t *testing.T) {
	base := VolumeSpec{Cluster: "c", LUN: "lun0", SizeGiB: 1, DriveLetter: "O", BlockSize: 4096, NodeSlots: 2}
	for label, want := range map[string]string{
		"VM\x00STORE":           "contains a NUL byte (U+0000 at byte 2)",
		"VM\tSTORE":             "contains a control character (U+0009 at byte 2)",
		"VM\xffSTORE":           "is not valid UTF-8 (at byte 2)",
		strings.Repeat("A", 33): "at most 32 bytes",
	} {
		s := base
		s.Label = label
		err := CheckVolumeSpec(s)
		if !isAttr(err, "label") || !strings.Contains(err.Error(), want) {
			t.Errorf("label %q: %v; want %q", label, err, want)
		}
	}
	base.Label = "VMSTORE é"
	if err := CheckVolumeSpec(base); err != nil {
		t.Errorf("a printable UTF-8 label: %v", err)
	}
}

// The witness image the quorum created goes when the quorum is destroyed
// (or stops using it); an image the operator put there stays.
func TestWitnessImageRemovedWithQuorum(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	created := e.LUNPath("qwitness")
	if _, err := e.CreateQuorum(ctx, QuorumSpec{Cluster: "HVCLUSTER", Type: "node_and_disk_majority", WitnessDisk: "qwitness"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(created); err != nil {
		t.Fatal(err)
	}
	// An update that keeps the witness keeps its image.
	if _, err := e.UpdateQuorum(ctx, QuorumSpec{Cluster: "HVCLUSTER", Type: "node_and_disk_majority", WitnessDisk: "qwitness"}); err != nil {
		t.Fatal(err)
	}
	if err := e.ResetQuorum(ctx, "HVCLUSTER"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(created); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the witness image the quorum created stays after its destroy: %v", err)
	}
	// The operator's own image is not the quorum's to delete.
	own := e.LUNPath("ownwitness")
	if err := os.WriteFile(own, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(own, WitnessDiskSize); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateQuorum(ctx, QuorumSpec{Cluster: "HVCLUSTER", Type: "disk_only", WitnessDisk: "ownwitness"}); err != nil {
		t.Fatal(err)
	}
	if err := e.ResetQuorum(ctx, "HVCLUSTER"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(own); err != nil {
		t.Fatalf("the operator's witness image went: %v", err)
	}
}

// An error opening the database names its file once (it read "open P:
// open P: open P: is a directory").
func TestOpenErrorNamesFileOnce(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, DatabaseFile)
	if err := os.Mkdir(db, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := openT(Config{DataDir: dir})
	if err == nil || strings.Count(err.Error(), db) != 1 || !strings.Contains(err.Error(), "is a directory") {
		t.Fatalf("open error: %v; want %s named once", err, db)
	}
	if !errors.Is(err, syscall.EISDIR) {
		t.Fatal("tidying the message lost the error chain")
	}
}
