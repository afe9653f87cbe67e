package engine

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

func openDir(t *testing.T, dir string) *Engine {
	t.Helper()
	e, err := openT(Config{DataDir: dir, Clock: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func hasDir(t *testing.T, e *Engine, vol, name string) bool {
	t.Helper()
	found := false
	err := e.WithVolume(context.Background(), vol, y21, func(fv *kayofs.Volume) error {
		_, err := fv.ReadDir(name)
		found = err == nil
		if errors.Is(err, kayofs.ErrNotExist) {
			return nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// A data_dir copied with cp -a (a restored backup) works on its own LUN:
// a VM created through the copy lands in the copy's image and the
// original's is not changed by a byte, also when the copy's record still
// holds the absolute path an older version stored.
func TestCopiedDataDirUsesItsOwnLUN(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	a, b := filepath.Join(root, "A"), filepath.Join(root, "B")
	ea := openDir(t, a)
	mustHosts(t, ea, seedSpec(y21, 21), seedSpec(y22, 22))
	if _, err := ea.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22)); err != nil {
		t.Fatal(err)
	}
	vol, err := ea.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 1, DriveLetter: "O", BlockSize: 4096, NodeSlots: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ea.CreateVM(ctx, vmSpec(vol, "WEB01", 1024)); err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if _, err := getJSON(ctx, ea.st, volumeKey(vol.ID), &raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw["device"]; ok {
		t.Fatalf("the record stores the embedded LUN's path: %v", raw["device"])
	}
	ea.ReleaseMounts()
	ea.Close()
	if out, err := exec.Command("cp", "-a", a, b).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	orig := filepath.Join(a, SANDir, "lun0.img")
	before := sha(t, orig)

	eb := openDir(t, b)
	// As an older version left it: the absolute path of A's image.
	raw["device"] = orig
	buf, _ := json.Marshal(raw)
	if _, err := eb.st.Commit(ctx, nil, []store.Op{store.Put(volumeKey(vol.ID), buf)}); err != nil {
		t.Fatal(err)
	}
	if v, err := eb.GetVolume(ctx, vol.ID); err != nil || v.Device != filepath.Join(b, SANDir, "lun0.img") {
		t.Fatalf("the copy resolves its LUN to %q (%v), want its own", v.Device, err)
	}
	if _, err := eb.CreateVM(ctx, vmSpec(vol, "WEB02", 1024)); err != nil {
		t.Fatal(err)
	}
	if !hasDir(t, eb, vol.ID, "WEB02") || !hasDir(t, eb, vol.ID, "WEB01") {
		t.Fatal("the copy's LUN lacks WEB02 or WEB01")
	}
	eb.ReleaseMounts()
	if after := sha(t, orig); after != before {
		t.Fatalf("the original installation's LUN changed (sha256 %s -> %s)", before, after)
	}
}

// A LUN swapped for another volume's is refused before any write, naming
// both UUIDs; neither image changes.
func TestSwappedLUNRefused(t *testing.T) {
	ctx := context.Background()
	e := newDisk(t)
	o, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 1, DriveLetter: "O", BlockSize: 4096, NodeSlots: 4})
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun1", SizeGiB: 1, DriveLetter: "P", BlockSize: 4096, NodeSlots: 4})
	if err != nil {
		t.Fatal(err)
	}
	e.ReleaseMounts()
	l0, l1 := e.LUNPath("lun0"), e.LUNPath("lun1")
	for _, mv := range [][2]string{{l0, l0 + ".tmp"}, {l1, l0}, {l0 + ".tmp", l1}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	s0, s1 := sha(t, l0), sha(t, l1)
	_, err = e.CreateVM(ctx, vmSpec(o, "WEB01", 1024))
	if !errors.Is(err, ErrLUNLost) || !strings.Contains(err.Error(), "holds volume UUID "+p.ID+", the database expects "+o.ID) {
		t.Fatalf("a VM on a swapped LUN: %v", err)
	}
	err = e.WithVolume(ctx, p.ID, y21, func(*kayofs.Volume) error { return nil })
	if !errors.Is(err, ErrLUNLost) {
		t.Fatalf("mounting a swapped LUN: %v", err)
	}
	if _, err := e.UpdateVolume(ctx, o.ID, func() VolumeSpec { s := o.VolumeSpec; s.SizeGiB++; return s }()); !errors.Is(err, ErrLUNLost) {
		t.Fatalf("growing a swapped LUN: %v", err)
	}
	if sha(t, l0) != s0 || sha(t, l1) != s1 {
		t.Fatal("a swapped LUN was written")
	}
}

// zeroHead zeroes the first n bytes of path, as an operator's dd would.
func zeroHead(t *testing.T, path string, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, n), 0); err != nil {
		t.Fatal(err)
	}
}

// A LUN zeroed (or deleted) outside Kayo: the VM reads failed with the
// reason, and the VM, the volume and the cluster can all be destroyed —
// each with a note saying what was only forgotten; the LUN is left alone.
func TestLostLUNCanBeDestroyed(t *testing.T) {
	for _, how := range []string{"zeroed", "deleted"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			e := newDisk(t)
			vol, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 1, DriveLetter: "O", BlockSize: 4096, NodeSlots: 4})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.CreateVM(ctx, vmSpec(vol, "WEB01", 1024)); err != nil {
				t.Fatal(err)
			}
			e.ReleaseMounts()
			if how == "zeroed" {
				zeroHead(t, vol.Device, 64<<10)
			} else if err := os.Remove(vol.Device); err != nil {
				t.Fatal(err)
			}
			// Reads open no device: until a node reports the LUN, the
			// VM reads as before.
			if vm, err := e.RefreshVM(ctx, "HVCLUSTER", "WEB01"); err != nil || vm.Status != VMRunning {
				t.Fatalf("before any report the VM reads %s (%v), want running", vm.Status, err)
			}
			// The lab's nodes report it (an agent does on its heartbeat).
			if err := e.ReportLabVolumes(ctx); err != nil {
				t.Fatal(err)
			}
			vm, err := e.RefreshVM(ctx, "HVCLUSTER", "WEB01")
			if err != nil {
				t.Fatal(err)
			}
			if vm.Status != StatusFailed || !strings.Contains(vm.StatusReason, "its volume is gone: LUN \"lun0\"") {
				t.Fatalf("VM on a lost LUN reads %s (%s), want failed with the reason", vm.Status, vm.StatusReason)
			}
			nctx, notes := WithNotes(ctx)
			if err := e.DeleteVM(nctx, "HVCLUSTER", "WEB01"); err != nil {
				t.Fatalf("deleting the VM: %v", err)
			}
			if err := e.DeleteVolume(nctx, vol.ID, false); err != nil {
				t.Fatalf("deleting the volume: %v", err)
			}
			if err := e.DeleteCluster(ctx, "HVCLUSTER"); err != nil {
				t.Fatalf("deleting the cluster: %v", err)
			}
			if ns := notes.List(); len(ns) != 2 || !strings.Contains(ns[1].Summary, "was only forgotten") {
				t.Fatalf("notes %v, want one for the VM and one for the volume", ns)
			}
			if _, err := os.Stat(vol.Device); (how == "zeroed") != (err == nil) {
				t.Fatalf("the lost LUN after destroy: %v", err)
			}
			evs, err := e.Events(ctx)
			if err != nil {
				t.Fatal(err)
			}
			lost := false
			for _, ev := range evs {
				lost = lost || ev.Kind == EventVolumeDestroyed && ev.Detail["lun_lost"] != ""
			}
			if !lost {
				t.Fatal("no volume.destroyed event says lun_lost")
			}
		})
	}
}
