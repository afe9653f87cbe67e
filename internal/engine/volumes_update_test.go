package engine

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

func TestVolumeUpdateInPlace(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	s := seedVolume()
	s.SizeGiB, s.NodeSlots = 10, 2
	v, err := e.CreateVolume(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	err = e.WithVolume(ctx, v.ID, "Y-21-2k8x64", func(fv *kayofs.Volume) error {
		f, err := fv.Create("keep.txt")
		if err != nil {
			return err
		}
		_, err = f.WriteAt([]byte("kept"), 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		attr string
		mut  func(*VolumeSpec)
	}{
		{"size_gib", func(s *VolumeSpec) { s.SizeGiB = 5 }},
		{"node_slots", func(s *VolumeSpec) { s.NodeSlots = 1 }},
		{"block_size", func(s *VolumeSpec) { s.BlockSize = 8192 }},
		{"lun", func(s *VolumeSpec) { s.LUN = "lun9" }},
		{"drive_letter", func(s *VolumeSpec) { s.DriveLetter = "OO" }},
	} {
		n := s
		bad.mut(&n)
		var ie *InputError
		if _, err := e.UpdateVolume(ctx, v.ID, n); !errors.As(err, &ie) || ie.Attribute != bad.attr {
			t.Errorf("%s: %v, want an input error on %s", bad.attr, err, bad.attr)
		}
		if err := e.CheckVolumePlan(ctx, v.ID, n); !errors.As(err, &ie) || ie.Attribute != bad.attr {
			t.Errorf("plan %s: %v, want an input error on %s", bad.attr, err, bad.attr)
		}
	}
	n := s
	n.SizeGiB, n.NodeSlots, n.Label, n.DriveLetter = 20, 4, "VMSTORE2", "P"
	v2, err := e.UpdateVolume(ctx, v.ID, n)
	if err != nil {
		t.Fatal(err)
	}
	if v2.ID != v.ID || v2.SizeGiB != 20 || v2.DriveLetter != "P" || len(v2.Mounts) != 2 {
		t.Fatalf("updated volume %+v", v2)
	}
	if fi, _ := os.Stat(v.Device); fi.Size() != 20<<30 {
		t.Fatalf("LUN image is %d bytes", fi.Size())
	}
	if _, err := e.LookupVolume(ctx, "HVCLUSTER/O"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("old letter still resolves: %v", err)
	}
	if got, err := e.LookupVolume(ctx, "HVCLUSTER/P"); err != nil || got.ID != v.ID {
		t.Fatalf("new letter: %v %v", got.ID, err)
	}
	err = e.WithVolume(ctx, v.ID, "Y-22-2k8x64", func(fv *kayofs.Volume) error {
		sb := fv.Superblock()
		if sb.Label != "VMSTORE2" || sb.SlotCount != 4 || sb.Size() < 19<<30 {
			t.Errorf("superblock after update: label %q, %d slots, %d bytes", sb.Label, sb.SlotCount, sb.Size())
		}
		f, err := fv.Create("big")
		if err != nil {
			return err
		}
		return f.Allocate(15 << 30) // only fits in the grown volume
	})
	if err != nil {
		t.Fatal(err)
	}
	// a second volume cannot take P
	o := seedVolume()
	o.LUN, o.DriveLetter, o.SizeGiB = "lun1", "P", 1
	var ie *InputError
	if _, err := e.CreateVolume(ctx, o); !errors.As(err, &ie) || ie.Attribute != "drive_letter" {
		t.Fatalf("duplicate letter: %v", err)
	}
	// the same LUN for another volume: mounted elsewhere
	o.LUN, o.DriveLetter, o.ForceFormat = "lun0", "Q", true
	if _, err := e.CreateVolume(ctx, o); !errors.As(err, &ie) || ie.Attribute != "lun" {
		t.Fatalf("LUN of another volume: %v", err)
	}
}

// Mounts follow cluster membership: a node added to the cluster mounts the
// volume, a removed one unmounts it, also both in one update.
func TestVolumeMountsFollowMembership(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	mustHosts(t, e, seedSpec("Y-23-2k8x64", 23), seedSpec("Y-24-2k8x64", 24))
	s := seedVolume()
	s.SizeGiB, s.NodeSlots = 10, 3
	v, err := e.CreateVolume(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpdateCluster(ctx, seedCluster("HVCLUSTER", "Y-21-2k8x64", "Y-22-2k8x64", "Y-23-2k8x64")); err != nil {
		t.Fatal(err)
	}
	v, _ = e.GetVolume(ctx, v.ID)
	if _, ok := v.Mounts["Y-23-2k8x64"]; !ok || len(v.Mounts) != 3 {
		t.Fatalf("after adding a node: mounts %v", v.Mounts)
	}
	// swap Y-22 for Y-24 in one change
	if _, err := e.UpdateCluster(ctx, seedCluster("HVCLUSTER", "Y-21-2k8x64", "Y-23-2k8x64", "Y-24-2k8x64")); err != nil {
		t.Fatal(err)
	}
	v, _ = e.GetVolume(ctx, v.ID)
	if _, ok := v.Mounts["Y-22-2k8x64"]; ok || len(v.Mounts) != 3 {
		t.Fatalf("after swapping nodes: mounts %v", v.Mounts)
	}
	fd, err := openDevice(v)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	slots, err := kayofs.Slots(fd)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]int{}
	for _, si := range slots {
		if si.State != "free" {
			held[si.Node] = si.Slot
		}
	}
	if len(held) != 3 || held["Y-24-2k8x64"] != v.Mounts["Y-24-2k8x64"] {
		t.Fatalf("on-disk slots %v, record %v", held, v.Mounts)
	}
	if probs, err := kayofs.Check(fd); err != nil || len(probs) > 0 {
		t.Fatalf("check: %v %v", probs, err)
	}
}
