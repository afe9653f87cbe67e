package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// On etcd from a machine without the LUN: a put is refused up front
// naming source and saying where to run it, with nothing recorded; a put
// file is removed by a node's executor, and the control plane opens no
// device.
func TestVolumeFileOnEtcdWithoutTheLUN(t *testing.T) {
	ctx := context.Background()
	cp, agents, m, _ := splitOnEtcd(t)
	mustHosts(t, cp, seedSpec(y21, 21), seedSpec(y22, 22))
	if _, err := cp.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22)); err != nil {
		t.Fatal(err)
	}
	startWorkAgent(t, agents, y21)
	startWorkAgent(t, agents, y22)
	v, err := cp.CreateVolume(ctx, seedVolume())
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(src, []byte("kayo"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := VolumeFileSpec{Volume: v.ID, Path: `docs\notes.txt`, Source: src}
	for name, err := range map[string]error{
		"plan":  cp.CheckVolumeFilePut(ctx, v.ID, src),
		"apply": func() error { _, err := cp.PutVolumeFile(ctx, spec); return err }(),
	} {
		var in *InputError
		if !errors.As(err, &in) || in.Attribute != "source" || in.Value != src || !strings.Contains(err.Error(), "not attached to this machine") {
			t.Errorf("%s of a put where the LUN is not attached: %v, want an error naming source", name, err)
		}
	}
	if fs, err := cp.ListVolumeFiles(ctx, v.ID); err != nil || len(fs) != 0 {
		t.Fatalf("a refused put left records: %v %v", fs, err)
	}
	// Put from a machine that sees the LUN (a node), removed from here.
	if _, err := agents.PutVolumeFile(ctx, spec); err != nil {
		t.Fatal(err)
	}
	opened := m.DevicesOpened()
	if err := cp.DeleteVolumeFile(ctx, v.ID, spec.Path); err != nil {
		t.Fatal(err)
	}
	if n := m.DevicesOpened() - opened; n != 0 {
		t.Errorf("the control plane opened %d devices to remove a file", n)
	}
	err = agents.WithVolume(ctx, v.ID, y21, func(fv *kayofs.Volume) error {
		ents, err := fv.ReadDir("")
		if err != nil {
			return err
		}
		if len(ents) != 0 {
			t.Errorf("the volume holds %v after the file's removal (the put's directory too should go)", ents)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cp.GetVolumeFile(ctx, v.ID, spec.Path); !errors.Is(err, ErrNotFound) {
		t.Errorf("the file's record after its removal: %v", err)
	}
}
