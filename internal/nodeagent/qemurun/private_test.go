package qemurun

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/localuser"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// checkPrivate checks what node's agent made for VM vm (run under umask
// 000): its directories 0700, every socket (request poke, NBD, QMP) 0600,
// the guest's console log and QEMU's log 0600; and that nobody cannot
// write the VM's disk through the agent's NBD server (qemu-io), in a
// data directory others may traverse.
func checkPrivate(t *testing.T, e *engine.Engine, node, vm string) {
	t.Helper()
	recs, err := e.QEMUNodeVMs(context.Background(), "HVCLUSTER", vm)
	if err != nil || len(recs) != 1 || recs[0].NBD == "" {
		t.Fatalf("records of %s: %+v %v", vm, recs, err)
	}
	dir := filepath.Join(e.DataDir(), "qemu", node)
	_, nbdSock, ok := strings.Cut(recs[0].NBD, "?socket=")
	if !ok {
		t.Fatalf("the agent serves %s's disk at %s, not on a unix socket", vm, recs[0].NBD)
	}
	want := map[string]os.FileMode{
		filepath.Dir(dir):                   0o700 | os.ModeDir,
		dir:                                 0o700 | os.ModeDir,
		qemu.AgentSocket(e.DataDir(), node): 0o600 | os.ModeSocket,
		nbdSock:                             0o600 | os.ModeSocket,
		recs[0].QMP:                         0o600 | os.ModeSocket,
		qemu.SerialPath(dir, vm):            0o600,
		qemu.LogPath(dir, vm):               0o600,
		filepath.Join(dir, "tls"):           0o700 | os.ModeDir,
	}
	for p, m := range want {
		fi, err := os.Stat(p)
		if os.IsNotExist(err) && strings.HasSuffix(p, "tls") {
			continue // no live migration yet
		}
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if fi.Mode() != m {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), m)
		}
	}
	qio, err := exec.LookPath("qemu-io")
	if err != nil {
		qemutest.SkipOrFail(t, err)
	}
	cmd, err := localuser.Command(qio, "-f", "raw", recs[0].NBD, "-c", "write -P 0x66 0 32768")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cannot run as nobody under CI=true: %v", err)
		}
		t.Logf("nobody's NBD write not tried: %v", err)
		return
	}
	if err := localuser.Reachable(dir); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ermission denied") {
		t.Fatalf("nobody's qemu-io write to %s: %v: %s", recs[0].NBD, err, out)
	}
	t.Logf("nobody's qemu-io write to the agent's NBD server: %s", strings.TrimSpace(string(out)))
}

// TestQEMUQuickMigrationLostStateSaysColdBoot kills the source's QEMU as a
// quick migration begins: the state cannot be saved, the migration rolls
// back, and the guest is started anew on the source. The error and the
// rollback event say it was a cold boot; no event or record calls it a
// completed quick migration.
func TestQEMUQuickMigrationLostStateSaysColdBoot(t *testing.T) {
	e, vol := qemuEnv(t)
	// Two boots under TCG: on a loaded machine the second one alone took
	// most of a minute.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := vmSpec(vol, "WEB01", 128)
	s.ProcessorCount, s.VHD.SizeGiB, s.OwnerNode, s.Adapters = 1, 1, y21, nil
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	boot, _, err := qemutest.WaitCounterID(ctx, serialOf(e, y21, "WEB01"), 2)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := e.QEMUNodeVMs(ctx, "HVCLUSTER", "WEB01")
	if err != nil || len(recs) != 1 || recs[0].PID == 0 {
		t.Fatalf("QEMU of WEB01: %+v %v", recs, err)
	}
	pid := recs[0].PID
	// The move starts; the source's QEMU dies as soon as it is pending.
	killed := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if vm, err := e.GetVM(ctx, "HVCLUSTER", "WEB01"); err == nil && vm.Pending != nil && vm.Pending.Op == "migrate" { // a move (internal/engine/vms_model.go, opMigrate)
				killed <- syscall.Kill(pid, syscall.SIGKILL)
				return
			}
			time.Sleep(time.Millisecond)
		}
		killed <- ctx.Err()
	}()
	s.OwnerNode, s.Migration = y22, engine.MigrationQuick
	_, err = e.UpdateVM(ctx, s)
	if kerr := <-killed; kerr != nil {
		t.Fatal(kerr)
	}
	if err == nil || !strings.Contains(err.Error(), "rolled back") || !strings.Contains(err.Error(), "cold boot") {
		t.Fatalf("quick migration whose source died: %v, want a rollback that says it was a cold boot", err)
	}
	t.Logf("UpdateVM: %v", err)
	vm, err := e.GetVM(ctx, "HVCLUSTER", "WEB01")
	if err != nil {
		t.Fatal(err)
	}
	if vm.Node != y21 || (vm.LastMigration != nil && vm.LastMigration.Type == engine.MigrationQuick) {
		t.Fatalf("after the failed move: node %s, last migration %+v", vm.Node, vm.LastMigration)
	}
	evs, err := e.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rolled *engine.Event
	for i, ev := range evs {
		if ev.Subject != "WEB01" {
			continue
		}
		if ev.Kind == engine.EventVMMigrationCompleted {
			t.Fatalf("event %s %v for a move that did not happen", ev.Kind, ev.Detail)
		}
		if ev.Kind == engine.EventVMMigrationRolledBack {
			rolled = &evs[i]
		}
	}
	if rolled == nil || !strings.Contains(rolled.Detail["cold_boot"], "cold boot") {
		t.Fatalf("rollback event %+v, want its cold_boot detail", rolled)
	}
	// It is a new boot indeed.
	for {
		if id, _, ok := qemutest.Counter(serialOf(e, y21, "WEB01")); ok && id != boot {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no new boot on the source")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
