package main

import (
	"context"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

func TestVolumeCheck(t *testing.T) {
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
	for _, ref := range []string{vol.ID, "HVCLUSTER/O"} {
		code, out, errOut := kayoctl(t, nil, "--data-dir", dir, "volume", "check", ref)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{vol.ID, `"VMSTORE"`, "Y-21-2k8x64", "detached", "Check: no problems"} {
			if !strings.Contains(out, want) {
				t.Errorf("volume check %s lacks %q:\n%s", ref, want, out)
			}
		}
	}
	// damage a group header: check reports it and exits 1
	fd, err := kayofs.OpenDevice(vol.Device)
	if err != nil {
		t.Fatal(err)
	}
	v, err := kayofs.Mount(fd, "Y-21-2k8x64")
	if err != nil {
		t.Fatal(err)
	}
	f, _ := v.Create("x")
	if err := f.Allocate(1 << 20); err != nil {
		t.Fatal(err)
	}
	sb := v.Superblock()
	_ = v.Detach()
	// The group header in its home location, past the slot journals
	// (which may hold copies of it: kayofs doc.go's layout).
	var hdr int64 = -1
	past := 2 + 2*int64(sb.MaxSlots) + int64(sb.MaxSlots)*int64(sb.JournalBlocks)
	for blk := past; blk < int64(sb.TotalBlocks) && hdr < 0; blk++ {
		b := make([]byte, 8)
		if _, err := fd.ReadAt(b, blk*4096); err == nil && b[0] == 0x09 && b[1] == 0 && b[2] == 0x59 && b[3] == 0x4b {
			hdr = blk
		}
	}
	if hdr < 0 {
		t.Fatal("no group header found")
	}
	if _, err := fd.WriteAt([]byte{0xff}, hdr*4096+100); err != nil {
		t.Fatal(err)
	}
	fd.Close()
	code, out, _ := kayoctl(t, nil, "--data-dir", dir, "volume", "check", "--json", "HVCLUSTER/O")
	if code != 1 || !strings.Contains(out, `"area": "group"`) {
		t.Errorf("damaged volume: exit %d\n%s", code, out)
	}
	// The order the usage shows: the flag after the volume.
	code, out, _ = kayoctl(t, nil, "--data-dir", dir, "volume", "check", vol.ID, "--json")
	if code != 1 || !strings.Contains(out, `"area": "group"`) {
		t.Errorf("volume check ID --json: exit %d\n%s", code, out)
	}
	code, out, _ = kayoctl(t, nil, "volume", "check", "--device", vol.Device)
	if code != 1 || !strings.Contains(out, "checksum mismatch") {
		t.Errorf("--device on the damaged image: exit %d\n%s", code, out)
	}
	if code, _, _ := kayoctl(t, nil, "--data-dir", dir, "volume"); code != 2 {
		t.Errorf("volume without check: exit %d, want 2", code)
	}
}
