package main

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

func TestVMList(t *testing.T) {
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
	s := engine.VMSpec{Cluster: "HVCLUSTER", Volume: vol.ID, Name: "WEB01", MemoryMB: 2048, ProcessorCount: 1,
		VHD: engine.VHDSpec{SizeGiB: 1, Type: "dynamic"}, OwnerNode: "Y-21-2k8x64", AntiAffinityMode: "preferred",
		Migration: "live", State: "running", Failback: engine.FailbackSpec{Mode: "prevent"}, MaxFailures: 2, FailurePeriodHours: 6}
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	s.OwnerNode = "Y-22-2k8x64"
	if _, err := e.UpdateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	_ = e.Close()
	code, out, errOut := kayoctl(t, nil, "--data-dir", dir, "vm", "list")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"WEB01", "Y-22-2k8x64", `O:\WEB01\WEB01.vhd`, "live Y-21-2k8x64→Y-22-2k8x64", "running"} {
		if !strings.Contains(out, want) {
			t.Errorf("vm list lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = kayoctl(t, nil, "--data-dir", dir, "vm", "list", "--json")
	if code != 0 || !strings.Contains(out, `"token": 2`) {
		t.Errorf("vm list --json: %d\n%s", code, out)
	}
	if code, _, _ := kayoctl(t, nil, "--data-dir", dir, "vm"); code != 2 {
		t.Errorf("vm without list: exit %d, want 2", code)
	}
}

// A VM whose volume's LUN was zeroed outside Kayo is listed failed, with
// the reason, not running.
func TestVMListLostVolume(t *testing.T) {
	dir := newDataDir(t, 10)
	ctx := context.Background()
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, engine.VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 1, DriveLetter: "O", BlockSize: 4096, NodeSlots: 4})
	if err != nil {
		t.Fatal(err)
	}
	s := engine.VMSpec{Cluster: "HVCLUSTER", Volume: vol.ID, Name: "WEB01", MemoryMB: 1024, ProcessorCount: 1,
		VHD: engine.VHDSpec{SizeGiB: 1, Type: "dynamic"}, AntiAffinityMode: "preferred",
		Migration: "live", State: "running", Failback: engine.FailbackSpec{Mode: "prevent"}, MaxFailures: 2, FailurePeriodHours: 6}
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	e.ReleaseMounts()
	_ = e.Close()
	if code, out, _ := kayoctl(t, nil, "--data-dir", dir, "vm", "list", "--json"); code != 0 || !strings.Contains(out, `"status": "running"`) {
		t.Fatalf("before: %d\n%s", code, out)
	}
	f, err := os.OpenFile(vol.Device, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt(make([]byte, 64<<10), 0)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := kayoctl(t, nil, "--data-dir", dir, "vm", "list")
	if code != 0 || !strings.Contains(out, "failed (its volume is gone: LUN \"lun0\"") || strings.Contains(out, "running") {
		t.Fatalf("vm list after the LUN was zeroed: exit %d\n%s%s", code, out, errOut)
	}
}
