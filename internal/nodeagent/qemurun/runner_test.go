package qemurun

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/vhd"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// qemuEnv: the seed's two hosts in a qemu cluster with volume O:, and an
// in-process QEMU executor per node (as `kayoctl agent` runs it).
func qemuEnv(t *testing.T) (*engine.Engine, engine.Volume) {
	t.Helper()
	_, g, err := qemutest.Prepare(qemutest.RepoRoot())
	if err != nil {
		qemutest.SkipOrFail(t, err)
	}
	ctx := context.Background()
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, Store: memstore.New(), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
	cs := seedCluster("HVCLUSTER", y21, y22)
	cs.Hypervisor = engine.HypervisorQEMU
	if _, err := e.CreateCluster(ctx, cs); err != nil {
		t.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, engine.VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 8, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 8})
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	var done []chan struct{}
	for _, n := range []string{y21, y22} {
		q := New(e, n, n+"/test", Config{Guest: g, Logf: func(f string, args ...any) { t.Logf(n+": "+f, args...) }})
		ch := make(chan struct{})
		done = append(done, ch)
		go func() { defer close(ch); _ = q.Run(actx) }()
	}
	t.Cleanup(func() {
		cancel()
		for _, ch := range done {
			<-ch
		}
	})
	// The agents run in goroutines: wait for their first heartbeat, as a
	// user starts `kayoctl agent` before applying.
	for _, n := range []string{y21, y22} {
		deadline := time.Now().Add(30 * time.Second)
		for runnerUp(ctx, e, n) != nil {
			if time.Now().After(deadline) {
				t.Fatalf("agent of %s: %v", n, runnerUp(ctx, e, n))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return e, vol
}

var counterLine = regexp.MustCompile(`KAYO-COUNTER id=(\S+) n=(\d+) disk=\[([^\]]*)\]`)

type counterRec struct {
	id   string
	n    int
	disk string
}

func serialCounters(t *testing.T, path string) []counterRec {
	t.Helper()
	b, _ := os.ReadFile(path)
	var out []counterRec
	for _, m := range counterLine.FindAllStringSubmatch(string(b), -1) {
		n, _ := strconv.Atoi(m[2])
		out = append(out, counterRec{m[1], n, m[3]})
	}
	return out
}

func serialOf(e *engine.Engine, node, vm string) string {
	return qemu.SerialPath(filepath.Join(e.DataDir(), "qemu", node), vm)
}

// TestQEMULiveAndQuickMigration boots the guest on Y-21, live-migrates it
// to Y-22 and quick-migrates it back: the counter continues without a
// reset, one QEMU process runs it, and records it wrote to its disk before
// a move read back after it (and are in the VHD on the volume). Local
// users attack throughout (localAttacker: nobody connects first to every
// new listener of the agents and their QEMU processes, root injects a
// plain-text stream): neither move breaks, and the quick migration opens
// no listener at all.
func TestQEMULiveAndQuickMigration(t *testing.T) {
	e, vol := qemuEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	attacker := startLocalAttacker(t, qemuPIDs(e))
	s := vmSpec(vol, "WEB01", 128)
	s.ProcessorCount, s.VHD.SizeGiB, s.OwnerNode, s.Adapters = 1, 1, y21, nil
	vm, err := e.CreateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Node != y21 || vm.Status != engine.VMRunning {
		t.Fatalf("created: node %s status %s", vm.Node, vm.Status)
	}
	id, n0, err := qemutest.WaitCounterID(ctx, serialOf(e, y21, "WEB01"), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("booted on %s: boot id %s, counter %d", y21, id, n0)

	// Live migration.
	s.OwnerNode = y22
	vm, err = e.UpdateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	lm := vm.LastMigration
	if vm.Node != y22 || lm == nil || lm.Type != engine.MigrationLive {
		t.Fatalf("after live migration: node %s, last migration %+v", vm.Node, lm)
	}
	t.Logf("live migration: total %d ms, downtime %d ms, %d rounds; attacked listeners: %v", lm.DurationMs, lm.DowntimeMs, lm.Rounds, attacker.Hits())
	procs, err := e.QEMUProcesses(ctx, "HVCLUSTER", "WEB01")
	if err != nil || len(procs) != 1 || !strings.HasPrefix(procs[0], y22) {
		t.Fatalf("QEMU processes of WEB01: %v %v, want one on %s", procs, err, y22)
	}
	src := serialCounters(t, serialOf(e, y21, "WEB01"))
	lastSrc := src[len(src)-1]
	if _, _, err := qemutest.WaitCounterID(ctx, serialOf(e, y22, "WEB01"), lastSrc.n+3); err != nil {
		t.Fatal(err)
	}
	checkContinues(t, src, serialCounters(t, serialOf(e, y22, "WEB01")))

	// Quick migration back.
	s.OwnerNode, s.Migration = y21, engine.MigrationQuick
	vm, err = e.UpdateVM(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Node != y21 || vm.LastMigration == nil || vm.LastMigration.Type != engine.MigrationQuick {
		t.Fatalf("after quick migration: node %s, %+v", vm.Node, vm.LastMigration)
	}
	if h := attacker.Hits(); len(h) > 0 {
		t.Fatalf("the quick migration opened TCP listeners a local user reached: %v", h)
	}
	mid := serialCounters(t, serialOf(e, y22, "WEB01"))
	before := len(serialCounters(t, serialOf(e, y21, "WEB01")))
	if _, _, err := qemutest.WaitCounterID(ctx, serialOf(e, y21, "WEB01"), mid[len(mid)-1].n+3); err != nil {
		t.Fatal(err)
	}
	back := serialCounters(t, serialOf(e, y21, "WEB01"))[before:]
	checkContinues(t, mid, back)
	procs, _ = e.QEMUProcesses(ctx, "HVCLUSTER", "WEB01")
	if len(procs) != 1 || !strings.HasPrefix(procs[0], y21) {
		t.Fatalf("QEMU processes after quick migration: %v", procs)
	}

	// Off: the records the guest wrote are in the VHD on the volume.
	s.State = engine.VMOff
	if _, err := e.UpdateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	last := serialCounters(t, serialOf(e, y21, "WEB01"))
	final := last[len(last)-1]
	err = e.WithVolume(ctx, vol.ID, y21, func(fv *kayofs.Volume) error {
		f, err := fv.Open("WEB01/WEB01.vhd")
		if err != nil {
			return err
		}
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		if probs := vhd.Check(vmFile{f}, fi.Size); len(probs) > 0 {
			t.Errorf("VHD check: %v", probs)
		}
		d, err := vhd.Open(vmFile{f}, fi.Size)
		if err != nil {
			return err
		}
		sec := make([]byte, 512)
		if _, err := d.ReadAt(sec, 512); err != nil {
			return err
		}
		got := strings.TrimSpace(string(sec))
		t.Logf("sector 1 of the VHD on the volume: %q (last counter line n=%d)", got, final.n)
		if !strings.HasPrefix(got, "KAYO-REC id="+id+" n=") {
			t.Errorf("sector 1 = %q, want a record of boot %s", got, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteVM(ctx, "HVCLUSTER", "WEB01"); err != nil {
		t.Fatal(err)
	}
	if procs, _ := e.QEMUProcesses(ctx, "HVCLUSTER", "WEB01"); len(procs) != 0 {
		t.Fatalf("after delete: %v", procs)
	}
}

// checkContinues: the guest's counter after a move continues the one
// before it (same boot, next number), and the first record it reads back
// from its disk after the move is one it wrote before it.
func checkContinues(t *testing.T, before, after []counterRec) {
	t.Helper()
	if len(before) == 0 || len(after) == 0 {
		t.Fatalf("counter lines: %d before, %d after the move", len(before), len(after))
	}
	b, a := before[len(before)-1], after[0]
	if a.id != b.id {
		t.Fatalf("the guest rebooted: boot %s before, %s after", b.id, a.id)
	}
	if a.n != b.n+1 {
		t.Fatalf("counter jumped: %d before the move, %d after (want %d)", b.n, a.n, b.n+1)
	}
	want := "KAYO-REC id=" + b.id + " n=" + strconv.Itoa(b.n)
	if strings.TrimSpace(a.disk) != want {
		t.Fatalf("first disk read after the move: %q, want %q (written before it)", a.disk, want)
	}
	t.Logf("counter continues: %d → %d, same boot %s; disk record written before the move read back: %q", b.n, a.n, a.id, a.disk)
}

// TestQEMUCrashFailsVM kills the guest's QEMU process outside the engine:
// the VM's status becomes failed with a status_reason naming the exit (and
// the events say so), and an update of the unchanged spec starts it again.
// The agents run under umask 000: their sockets and the guest's logs are
// private all the same (checkPrivate).
func TestQEMUCrashFailsVM(t *testing.T) {
	defer syscall.Umask(syscall.Umask(0))
	e, vol := qemuEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := vmSpec(vol, "WEB01", 128)
	s.ProcessorCount, s.VHD.SizeGiB, s.OwnerNode, s.Adapters = 1, 1, y21, nil
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	id, _, err := qemutest.WaitCounterID(ctx, serialOf(e, y21, "WEB01"), 2)
	if err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, e, y21, "WEB01")
	recs, err := e.QEMUNodeVMs(ctx, "HVCLUSTER", "WEB01")
	if err != nil || len(recs) != 1 || recs[0].PID == 0 {
		t.Fatalf("QEMU of WEB01: %+v %v", recs, err)
	}
	if err := syscall.Kill(recs[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var vm engine.VM
	for {
		if vm, err = e.GetVM(ctx, "HVCLUSTER", "WEB01"); err != nil {
			t.Fatal(err)
		}
		if vm.Status == engine.StatusFailed {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("VM status %q after its QEMU was killed, want failed", vm.Status)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if !strings.Contains(vm.StatusReason, "exited unexpectedly") || !strings.Contains(vm.StatusReason, y21) {
		t.Fatalf("status_reason %q", vm.StatusReason)
	}
	t.Logf("status %s: %s", vm.Status, vm.StatusReason)
	evs, err := e.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, ev := range evs {
		kinds[ev.Kind] = true
	}
	if !kinds[engine.EventVMQEMUExited] || !kinds[engine.EventVMFailed] {
		t.Fatalf("events %v, want %s and %s", kinds, engine.EventVMQEMUExited, engine.EventVMFailed)
	}
	if procs, _ := e.QEMUProcesses(ctx, "HVCLUSTER", "WEB01"); len(procs) != 0 {
		t.Fatalf("QEMU processes after the crash: %v", procs)
	}
	// Re-apply: the same spec starts it again (a new boot).
	if vm, err = e.UpdateVM(ctx, s); err != nil || vm.Status != engine.VMRunning || vm.StatusReason != "" {
		t.Fatalf("after update: %s %q %v", vm.Status, vm.StatusReason, err)
	}
	for {
		c := serialCounters(t, serialOf(e, y21, "WEB01"))
		if len(c) > 0 && c[len(c)-1].id != id {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no new boot after the update")
		case <-time.After(50 * time.Millisecond):
		}
	}
}
