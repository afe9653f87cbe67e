package engine

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// newDisk is an engine on a data dir of its own (the embedded SAN needs one)
// with the seed's two-node cluster formed.
func newDisk(t *testing.T) *Engine {
	t.Helper()
	e, err := openT(Config{DataDir: t.TempDir(), Clock: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	mustHosts(t, e, seedSpec("Y-21-2k8x64", 21), seedSpec("Y-22-2k8x64", 22))
	if _, err := e.CreateCluster(context.Background(), seedCluster("HVCLUSTER", "Y-21-2k8x64", "Y-22-2k8x64")); err != nil {
		t.Fatal(err)
	}
	return e
}

func seedVolume() VolumeSpec {
	return VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 500, Label: "VMSTORE", DriveLetter: "O",
		BlockSize: 4096, NodeSlots: 16}
}

func TestVolumeLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	v, err := e.CreateVolume(ctx, seedVolume())
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Mounts) != 2 || v.Mounts["Y-21-2k8x64"] == v.Mounts["Y-22-2k8x64"] {
		t.Fatalf("mounts = %v, want one distinct slot per node", v.Mounts)
	}
	if fi, err := os.Stat(v.Device); err != nil || fi.Size() != 500<<30 {
		t.Fatalf("LUN image %s: %v", v.Device, err)
	}
	// What one node writes, the other reads: the storage is shared.
	err = e.WithVolume(ctx, v.ID, "Y-21-2k8x64", func(fv *kayofs.Volume) error {
		if err := fv.MkdirAll("WEB01"); err != nil {
			return err
		}
		f, err := fv.Create("WEB01/WEB01.xml")
		if err != nil {
			return err
		}
		_, err = f.WriteAt([]byte("<vm/>"), 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	err = e.WithVolume(ctx, v.ID, "Y-22-2k8x64", func(fv *kayofs.Volume) error {
		if fv.Slot() != v.Mounts["Y-22-2k8x64"] {
			t.Errorf("Y-22-2k8x64 mounted in slot %d, recorded %d", fv.Slot(), v.Mounts["Y-22-2k8x64"])
		}
		f, err := fv.Open("WEB01/WEB01.xml")
		if err != nil {
			return err
		}
		b := make([]byte, 5)
		if _, err := f.ReadAt(b, 0); err != nil {
			return err
		}
		if string(b) != "<vm/>" {
			t.Errorf("read %q", b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Both nodes stay mounted (detached between uses, once the process's
	// cached mounts go idle: volume_mounts.go) and the volume is clean.
	e.releaseVolumeMounts(v.ID)
	fd, err := kayofs.OpenDevice(v.Device)
	if err != nil {
		t.Fatal(err)
	}
	probs, err := kayofs.Check(fd)
	slots, _ := kayofs.Slots(fd)
	fd.Close()
	if err != nil || len(probs) != 0 {
		t.Fatalf("Check: %v %v", probs, err)
	}
	for n, s := range v.Mounts {
		if slots[s].Node != n || slots[s].State != "detached" {
			t.Fatalf("slot %d = %+v, want %s detached", s, slots[s], n)
		}
	}
	for _, ref := range []string{v.ID, "HVCLUSTER/O", "HVCLUSTER/o:"} {
		if got, err := e.LookupVolume(ctx, ref); err != nil || got.ID != v.ID {
			t.Fatalf("LookupVolume(%q) = %v, %v", ref, got.ID, err)
		}
	}
	// A second volume at the same letter is refused.
	other := seedVolume()
	other.LUN = "lun1"
	var ie *InputError
	if _, err := e.CreateVolume(ctx, other); !errors.As(err, &ie) || ie.Attribute != "drive_letter" {
		t.Fatalf("duplicate drive letter: %v", err)
	}
	// Files on it: destroy refuses, and nothing is lost.
	if err := e.DeleteVolume(ctx, v.ID, false); !errors.As(err, &ie) || ie.Attribute != "force_destroy" ||
		!strings.Contains(err.Error(), "WEB01") {
		t.Fatalf("destroy with files: %v", err)
	}
	if _, err := e.GetVolume(ctx, v.ID); err != nil {
		t.Fatalf("refused destroy removed the record: %v", err)
	}
	if err := e.DeleteVolume(ctx, v.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(v.Device); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LUN image left behind: %v", err)
	}
	if _, err := e.GetVolume(ctx, v.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after destroy: %v", err)
	}
}

func TestVolumeRefusesExistingFileSystem(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	v, err := e.CreateVolume(ctx, seedVolume())
	if err != nil {
		t.Fatal(err)
	}
	// Forget the record (as if another installation formatted the LUN).
	if _, err := e.st.Commit(ctx, nil, []store.Op{store.Del(volumeKey(v.ID)), store.Del(volumeLetterKey("HVCLUSTER", "O"))}); err != nil {
		t.Fatal(err)
	}
	s := seedVolume()
	s.DriveLetter = "P"
	var ie *InputError
	if _, err := e.CreateVolume(ctx, s); !errors.As(err, &ie) || ie.Attribute != "force_format" ||
		!strings.Contains(err.Error(), "kayofs") {
		t.Fatalf("existing file system: %v", err)
	}
}

// A creation interrupted after its intent, and after its format was
// recorded (Formatted), is resumed by the next call, not formatted again.
// (One killed before Formatted formats from scratch: TestVolumeFormatAgentKilled.)
func TestVolumeCreateResumes(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	s := seedVolume()
	dev, err := e.devicePath(s)
	if err != nil {
		t.Fatal(err)
	}
	in, err := e.volumeIntent(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	// The crashed run had created and formatted the image, and recorded it.
	if err := os.MkdirAll(strings.TrimSuffix(dev, "/lun0.img"), 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := kayofs.CreateImage(dev, s.SizeGiB<<30)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := kayofs.Format(fd, kayofs.FormatOptions{BlockSize: 4096, Slots: 16, Label: "VMSTORE"})
	fd.Close()
	if err != nil {
		t.Fatal(err)
	}
	in.Created, in.Writing, in.Formatted = true, true, true
	if _, err := e.st.Commit(ctx, nil, []store.Op{putJSON(volumeIntentKey(s.Cluster, s.DriveLetter), in)}); err != nil {
		t.Fatal(err)
	}
	v, err := e.CreateVolume(ctx, s)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if v.ID != sb.UUIDString() {
		t.Fatalf("resumed creation formatted again: %s, want %s", v.ID, sb.UUIDString())
	}
	if _, err := e.st.Get(ctx, volumeIntentKey("HVCLUSTER", "O")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("intent left behind: %v", err)
	}
}

func TestCheckVolumeSpec(t *testing.T) {
	cases := map[string]struct {
		mod  func(*VolumeSpec)
		attr string
	}{
		"valid":          {func(*VolumeSpec) {}, ""},
		"two letters":    {func(s *VolumeSpec) { s.DriveLetter = "OO" }, "drive_letter"},
		"digit":          {func(s *VolumeSpec) { s.DriveLetter = "1" }, "drive_letter"},
		"system drive":   {func(s *VolumeSpec) { s.DriveLetter = "C" }, "drive_letter"},
		"block size":     {func(s *VolumeSpec) { s.BlockSize = 3000 }, "block_size"},
		"big block":      {func(s *VolumeSpec) { s.BlockSize = 131072 }, "block_size"},
		"slots":          {func(s *VolumeSpec) { s.NodeSlots = 65 }, "node_slots"},
		"size":           {func(s *VolumeSpec) { s.SizeGiB = 0 }, "size_gib"},
		"lun name":       {func(s *VolumeSpec) { s.LUN = "../x" }, "lun"},
		"relative path":  {func(s *VolumeSpec) { s.LUN = "dev/sdb" }, "lun"},
		"device path ok": {func(s *VolumeSpec) { s.LUN = "/dev/sdb" }, ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			s := seedVolume()
			tc.mod(&s)
			err := CheckVolumeSpec(s)
			var ie *InputError
			switch {
			case tc.attr == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.attr != "" && (!errors.As(err, &ie) || ie.Attribute != tc.attr):
				t.Fatalf("want an error on %s, got %v", tc.attr, err)
			}
		})
	}
}
