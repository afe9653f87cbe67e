package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

// volume cp puts a template on the volume (refusing a *.vhd that is no
// VHD, writing nothing), and volume rm deletes it.
func TestVolumeCpRm(t *testing.T) {
	dir := newDataDir(t, 10)
	ctx := context.Background()
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, engine.VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 10, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 16})
	if err != nil {
		t.Fatal(err)
	}
	_ = e.Close()
	local := t.TempDir()
	junk := filepath.Join(local, "junk.vhd")
	if err := os.WriteFile(junk, []byte(strings.Repeat("junk", 300)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := kayoctl(t, nil, "--data-dir", dir, "volume", "cp", junk, `HVCLUSTER/O:templates\base.vhd`)
	if code == 0 || !strings.Contains(errOut, "not a valid VHD") {
		t.Fatalf("cp of a junk .vhd: exit %d: %s", code, errOut)
	}
	good := filepath.Join(local, "base.vhd")
	f, err := os.Create(good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vhd.Create(vhd.OSFile(f), vhd.Options{Type: vhd.Dynamic, Size: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	code, out, errOut := kayoctl(t, nil, "--data-dir", dir, "volume", "cp", good, vol.ID+`:templates\base.vhd`)
	if code != 0 || !strings.Contains(out, `O:\templates\base.vhd: vhd,`) {
		t.Fatalf("cp: exit %d: %s %s", code, out, errOut)
	}
	if code, _, errOut := kayoctl(t, nil, "--data-dir", dir, "volume", "rm", "HVCLUSTER/O:templates/base.vhd"); code != 0 {
		t.Fatalf("rm: exit %d: %s", code, errOut)
	}
	e, err = engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if fs, err := e.ListVolumeFiles(ctx, vol.ID); err != nil || len(fs) != 0 {
		t.Fatalf("files after rm: %v %v", fs, err)
	}
}
