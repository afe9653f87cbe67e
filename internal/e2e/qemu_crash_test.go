package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

func qemuConfig(dataDir, owner string) string {
	return providerBlock(dataDir, "60s") + hostBlock("y21", "Y-21-2k8x64", 21) + hostBlock("y22", "Y-22-2k8x64", 22) + fmt.Sprintf(`
resource "kayo_cluster" "c" {
  name           = "HVCLUSTER"
  nodes          = [kayo_host.y21.name, kayo_host.y22.name]
  static_address = "192.0.2.50/24"
  hypervisor     = "qemu"
}
resource "kayo_shared_volume" "o" {
  cluster_id   = kayo_cluster.c.id
  lun          = "lun0"
  size_gib     = 8
  label        = "VMSTORE"
  drive_letter = "O"
  node_slots   = 8
}
resource "kayo_virtual_machine" "web" {
  cluster_id       = kayo_cluster.c.id
  volume_id        = kayo_shared_volume.o.id
  name             = "WEB01"
  memory_mb        = 256
  processor_count  = 1
  vhd              = { size_gib = 1, type = "dynamic" }
  network_adapters = []
  owner_node       = %q
}
`, owner)
}

// qemuProcs lists the QEMU processes on this machine whose command line
// names files under dataDir (the test's own), by scanning /proc.
func qemuProcs(dataDir string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, "qemu-system") && strings.Contains(cmd, dataDir) && strings.Contains(cmd, "-name WEB01") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestQEMUProviderKilledMidMigration SIGKILLs the provider's plugin process
// while QEMU live-migrates the guest; the next apply converges with
// exactly one QEMU process running the VM, on the target, and the guest
// never rebooted.
func TestQEMUProviderKilledMidMigration(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU crash test")
	}
	guest := qemutest.Guest(t)
	cli := testcli.CLIs(t)[0]
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	work := filepath.Join(dir, "work")
	for _, d := range []string{data, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	qemutest.StartAgents(t, data, guest, "Y-21-2k8x64", "Y-22-2k8x64")
	m := testcli.NewMirror(t, testcli.KayoProvider(t))
	w := testcli.NewWorkdir(cli, work, m)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()
	if err := w.WriteFile("main.tf", qemuConfig(data, "Y-21-2k8x64")); err != nil {
		t.Fatal(err)
	}
	testcli.Must(t, w.Init(ctx))
	testcli.Must(t, w.Apply(ctx))
	t.Cleanup(func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer dcancel()
		if r := w.Destroy(dctx); r.Err != nil {
			t.Errorf("destroy: %v", r.Err)
		}
	})
	src := qemutest.SerialPath(data, "Y-21-2k8x64", "WEB01")
	if err := qemutest.WaitCounter(ctx, src, 3); err != nil {
		t.Fatal(err)
	}
	boot := qemutest.Counters(src)[0].ID

	// Migrate, and kill the provider while QEMU copies memory.
	if err := w.WriteFile("main.tf", qemuConfig(data, "Y-22-2k8x64")); err != nil {
		t.Fatal(err)
	}
	applied := make(chan testcli.Result, 1)
	go func() { applied <- w.Apply(ctx) }()
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	killed := 0
	for killed == 0 {
		select {
		case r := <-applied:
			t.Fatalf("the apply ended before the provider could be killed mid-migration: %v", r.Err)
		case <-time.After(3 * time.Millisecond):
		}
		vm, err := e.GetVM(ctx, "HVCLUSTER", "WEB01")
		if err != nil || vm.Pending == nil || vm.Pending.Op != "migrate" || vm.Pending.Phase != engine.PhasePrepare {
			continue
		}
		recs, _ := e.QEMUNodeVMs(ctx, "HVCLUSTER", "WEB01")
		incoming := false
		for _, r := range recs {
			incoming = incoming || (r.Node == "Y-22-2k8x64" && r.PID > 0)
		}
		if !incoming {
			continue // not copying yet
		}
		host, _ := os.Hostname()
		if vm.Pending.Holder.Host != host {
			t.Fatalf("pending holder %v is not on this host", vm.Pending.Holder)
		}
		if err := syscall.Kill(vm.Pending.Holder.PID, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed = vm.Pending.Holder.PID
		t.Logf("killed the provider (pid %d) with the target QEMU started: %d QEMU processes run WEB01", killed, len(qemuProcs(data)))
	}
	_ = e.Close()
	if r := <-applied; r.Err == nil {
		t.Fatal("the apply whose provider was killed succeeded")
	}

	// Re-apply converges.
	testcli.Must(t, w.Apply(ctx))
	e, err = engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: data})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	vm, err := e.GetVM(ctx, "HVCLUSTER", "WEB01")
	if err != nil {
		t.Fatal(err)
	}
	procs, _ := e.QEMUProcesses(ctx, "HVCLUSTER", "WEB01")
	real := qemuProcs(data)
	t.Logf("after re-apply: node %s, status %s, pending %v; agents report %v; /proc has %d QEMU for WEB01", vm.Node, vm.Status, vm.Pending, procs, len(real))
	if vm.Node != "Y-22-2k8x64" || vm.Status != engine.VMRunning || vm.Pending != nil {
		t.Fatalf("not converged: node %s status %s pending %+v", vm.Node, vm.Status, vm.Pending)
	}
	if len(procs) != 1 || !strings.HasPrefix(procs[0], "Y-22-2k8x64") || len(real) != 1 {
		t.Fatalf("want exactly one QEMU for WEB01, on Y-22-2k8x64: agents report %v, /proc has %v", procs, real)
	}
	dst := qemutest.SerialPath(data, "Y-22-2k8x64", "WEB01")
	if err := qemutest.WaitCounter(ctx, dst, 1); err != nil {
		t.Fatal(err)
	}
	lines := qemutest.Counters(dst)
	if last := lines[len(lines)-1]; last.ID != boot {
		t.Fatalf("the guest rebooted: boot %s at first, %s now", boot, last.ID)
	}
}
