//go:build unix

package engine

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The crash test kills a process with SIGKILL at each phase of a live and
// of a quick migration, then checks that the next call converges (rolled
// back before the ownership switch, forward after), that the event
// history never shows two owners, that one node at most runs the VM, and
// that the volume checks clean.

const crashEnv = "KAYO_VM_CRASH_DIR"

// TestVMCrashHelper is the process that gets killed. It does nothing in a
// normal test run.
func TestVMCrashHelper(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("helper process of TestVMCrashMidMigration")
	}
	phase, target := os.Getenv("KAYO_VM_CRASH_PHASE"), os.Getenv("KAYO_VM_CRASH_TARGET")
	e, err := openT(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	e.migrationHook = func(p string) {
		if p == phase {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
	}
	ctx := context.Background()
	vm, err := e.GetVM(ctx, "HVCLUSTER", "WEB01")
	if err != nil {
		t.Fatal(err)
	}
	s := vm.VMSpec
	s.OwnerNode = target
	if _, err := e.UpdateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	t.Fatal("the migration finished: the crash point was not reached")
}

func crashSetup(t *testing.T) (string, Volume) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	e, err := openT(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	amd := seedSpec(y23, 23)
	amd.ProcessorVendor = "amd"
	mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22), amd)
	if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22, y23)); err != nil {
		t.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 50, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 16})
	if err != nil {
		t.Fatal(err)
	}
	s := vmSpec(vol, "WEB01", 2048)
	s.OwnerNode = y21
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	return dir, vol
}

func TestVMCrashMidMigration(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess crash test")
	}
	// local: the killed process runs its nodes' executors itself (and
	// they die with it); agents: the nodes' agents do its node work (the
	// simulator's calls, the state file) and outlive it.
	for _, mode := range []string{"local", "agents"} {
		for _, target := range []string{y22, y23} { // live (intel → intel), quick (intel → amd)
			for i, phase := range CrashPoints {
				t.Run(mode+"/"+target+"/"+phase, func(t *testing.T) {
					t.Parallel()
					crashMidMigration(t, mode == "agents", target, i, phase)
				})
			}
		}
	}
}

func crashMidMigration(t *testing.T, agents bool, target string, i int, phase string) {
	ctx := context.Background()
	dir, vol := crashSetup(t)
	stopAgents := func() {}
	if agents {
		ae, err := openT(Config{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		var hvCalls atomic.Int64
		ae.workHook = func(_ string, _ func(), op, phase string) {
			if op == workVMHypervisor && phase == "after" {
				hvCalls.Add(1)
			}
		}
		defer func() {
			if hvCalls.Load() == 0 {
				t.Error("the agents carried out no simulator call")
			}
		}()
		var stops []func()
		for _, n := range []string{y21, y22, y23} {
			stops = append(stops, startWorkAgent(t, ae, n))
		}
		stopAgents = func() {
			for _, stop := range stops {
				stop()
			}
			_ = ae.Close()
		}
		defer stopAgents()
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestVMCrashHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir, "KAYO_VM_CRASH_PHASE="+phase, "KAYO_VM_CRASH_TARGET="+target)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper was not killed at %s: %v\n%s", phase, err, out)
	}
	e, err := openT(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	before, err := e.GetVM(ctx, "HVCLUSTER", "WEB01")
	if err != nil {
		t.Fatal(err)
	}
	if before.Pending == nil || before.Pending.Op != opMigrate {
		t.Fatalf("no pending migration after a crash at %s: %+v", phase, before)
	}
	// The next read settles it: rolled back before the switch,
	// forward after.
	vm, err := e.RefreshVM(ctx, "HVCLUSTER", "WEB01")
	if err != nil {
		t.Fatal(err)
	}
	want := y21
	if i >= slices.Index(CrashPoints, CrashAfterSwitch) { // after the switch
		want = target
	}
	if vm.Pending != nil || vm.Node != want || vm.Status != VMRunning {
		t.Fatalf("after recovery from %s: node %s status %s pending %+v, want %s running", phase, vm.Node, vm.Status, vm.Pending, want)
	}
	runningOn(t, e, "WEB01", want)
	// Re-apply converges on the target.
	s := vm.VMSpec
	s.OwnerNode = target
	if vm, err = e.UpdateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	if vm.Node != target || vm.Status != VMRunning {
		t.Fatalf("re-apply: %+v", vm)
	}
	runningOn(t, e, "WEB01", target)
	ownerChain(t, e)
	if kvs, _, _ := e.st.List(ctx, vmMigLockPrefix); len(kvs) != 0 {
		t.Errorf("pair locks left: %d", len(kvs))
	}
	stopAgents() // their mounts go before the check
	volumeClean(t, vol)
}
