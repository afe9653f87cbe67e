// Package storageprobe is a node agent's probe of a shared volume's LUN,
// for the Storage category of cluster validation: the node finds the LUN
// (as it resolves it), it holds the volume (same Kayo FS UUID) and is big
// enough for it, the node can take and release a lease on it, and it
// writes its stamp in the volume's validation area and reads the stamps
// the other nodes wrote (kayofs/probearea.go).
package storageprobe

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// Target is one volume as the probing node sees it.
type Target struct {
	Volume, Letter string // the volume UUID and drive letter
	Path           string // the LUN as this node resolves it
	Slot           int    // the node's slot in the volume: its stamp's record
	Node           string
	Seq            uint64 // grows with each of the node's rounds
	// Leases tune the probe's host lease (short ones: it is released at once).
	Leases kayofs.DiskLeaseOptions
	Now    func() time.Time
}

// Result is what one node found of one volume's LUN.
type Result struct {
	Volume    string `json:"volume"`
	Letter    string `json:"drive_letter"`
	Path      string `json:"path"`
	Seen      bool   `json:"seen"` // the LUN opens here
	UUID      string `json:"kayofs_uuid,omitempty"`
	SizeBytes int64  `json:"size_bytes,omitempty"` // the LUN's size here
	FSBytes   int64  `json:"fs_bytes,omitempty"`   // the Kayo FS's size
	// OldFormat: a format-version-1 volume, with no lease or validation
	// area: its access cannot be tested (the later steps are skipped).
	OldFormat bool `json:"old_format,omitempty"`
	Leased    bool `json:"leased"` // a host lease was taken and released
	Wrote     bool `json:"wrote"`  // its stamp is written
	// ReadFrom are the other nodes whose stamps it read back.
	ReadFrom []string `json:"read_from,omitempty"`
	// Error is the first check that failed; the later steps were skipped.
	Error string `json:"error,omitempty"`
}

// LeaseOptions are short host-lease timings for a probe: it holds the
// lease for one join (about 2 × IOTimeout), not for a mount's lifetime.
func LeaseOptions(logf func(string, ...any)) kayofs.DiskLeaseOptions {
	return kayofs.DiskLeaseOptions{Timeout: 2 * time.Second, Margin: time.Second, Renew: 500 * time.Millisecond,
		IOTimeout: 200 * time.Millisecond, Logf: logf}
}

// Probe runs the checks in order, stopping at the first failure: a LUN
// that does not hold the volume is never written to.
func Probe(t Target) Result {
	r := Result{Volume: t.Volume, Letter: t.Letter, Path: t.Path}
	if t.Now == nil {
		t.Now = time.Now
	}
	sb, size, err := kayofs.SuperblockOf(t.Path)
	switch {
	case err != nil && (errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission)):
		r.Error = fmt.Sprintf("LUN %s cannot be opened here: %v", t.Path, cause(err))
		return r
	case err != nil:
		r.Seen, r.SizeBytes = true, size
		r.Error = fmt.Sprintf("LUN %s holds no readable Kayo FS: %v", t.Path, cause(err))
		return r
	}
	r.Seen, r.SizeBytes, r.UUID = true, size, sb.UUIDString()
	r.FSBytes = int64(sb.TotalBlocks) * int64(sb.BlockSize)
	if r.UUID != t.Volume {
		r.Error = fmt.Sprintf("LUN %s holds Kayo FS volume %s, not %s", t.Path, r.UUID, t.Volume)
		return r
	}
	if size < r.FSBytes {
		r.Error = fmt.Sprintf("LUN %s is %d bytes here, smaller than its Kayo FS (%d bytes)", t.Path, size, r.FSBytes)
		return r
	}
	if sb.Version < 2 {
		r.OldFormat = true
		r.Error = fmt.Sprintf("volume format version %d has no lease or validation area: its access cannot be tested (reformat as version 2)", sb.Version)
		return r
	}
	if err := lease(t); err != nil {
		r.Error = fmt.Sprintf("taking a lease on LUN %s: %v", t.Path, cause(err))
		return r
	}
	r.Leased = true
	st := kayofs.ProbeStamp{Slot: t.Slot, Node: t.Node, Seq: t.Seq, UnixNano: t.Now().UnixNano()}
	if err := kayofs.WriteProbeStamp(t.Path, st); err != nil {
		r.Error = fmt.Sprintf("writing its block in the validation area of LUN %s: %v", t.Path, cause(err))
		return r
	}
	r.Wrote = true
	stamps, err := kayofs.ReadProbeStamps(t.Path)
	if err != nil {
		r.Error = fmt.Sprintf("reading the validation area of LUN %s: %v", t.Path, cause(err))
		return r
	}
	mine := false
	for _, s := range stamps {
		switch {
		case s.Slot == t.Slot && s.Node == t.Node && s.Seq == t.Seq:
			mine = true
		case s.Node != t.Node:
			r.ReadFrom = append(r.ReadFrom, s.Node)
		}
	}
	slices.Sort(r.ReadFrom)
	if !mine {
		r.Error = fmt.Sprintf("its block written in the validation area of LUN %s did not read back", t.Path)
	}
	return r
}

// lease takes a host lease on the volume (Disk Paxos's delta lease, as a
// mount with on-disk leases does) under a name of its own, so it never
// waits on the node's own mount, and releases it.
func lease(t Target) error {
	dev, err := kayofs.OpenDeviceDirect(t.Path)
	if err != nil {
		return err
	}
	defer dev.Close()
	lm, err := kayofs.NewDiskLeases(t.Leases)(dev, t.Node+"~probe")
	if err != nil {
		return err
	}
	return lm.Close()
}

func cause(err error) string { return strings.TrimPrefix(err.Error(), "kayofs: ") }
