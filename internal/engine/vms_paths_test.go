package engine

import (
	"context"
	"testing"
)

// TestVMPathsFollowDriveLetter: a drive letter changed in place moves the
// paths of the VMs on the volume at once (GetVM, ListVMs, an update's
// result), and the next commit of the VM's record stores them.
func TestVMPathsFollowDriveLetter(t *testing.T) {
	e, vol := vmEnv(t)
	ctx := context.Background()
	s := vmSpec(vol, "WEB01", 2048)
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	vs := vol.VolumeSpec
	vs.DriveLetter = "P"
	if _, err := e.UpdateVolume(ctx, vol.ID, vs); err != nil {
		t.Fatal(err)
	}
	want := func(what string, vm VM) {
		t.Helper()
		if vm.DriveLetter != "P" || vm.VHDPath != `P:\WEB01\WEB01.vhd` || vm.ConfigPath != `P:\WEB01\WEB01.xml` {
			t.Errorf("%s: letter %q, vhd %q, config %q; want P:\\WEB01\\WEB01.vhd", what, vm.DriveLetter, vm.VHDPath, vm.ConfigPath)
		}
	}
	vm, err := e.GetVM(ctx, "HVCLUSTER", "WEB01")
	if err != nil {
		t.Fatal(err)
	}
	want("GetVM", vm)
	vms, err := e.ListVMs(ctx, "HVCLUSTER")
	if err != nil || len(vms) != 1 {
		t.Fatalf("ListVMs: %v %v", vms, err)
	}
	want("ListVMs", vms[0])
	p, err := e.PlanVM(ctx, s)
	if err != nil || p.Paths.VHD != `P:\WEB01\WEB01.vhd` {
		t.Errorf("PlanVM paths %+v %v", p.Paths, err)
	}
	s.State = VMOff
	if vm, err = e.UpdateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	want("UpdateVM", vm)
	var rec VM
	if _, err := getJSON(ctx, e.st, vmKey("HVCLUSTER", "WEB01"), &rec); err != nil {
		t.Fatal(err)
	}
	want("the stored record after a commit", rec)
}
