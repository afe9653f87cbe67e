package engine

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// The node holding the fenced mount is a separate process (this test
// binary run again as TestFenceNodeChild) sharing the data dir's database
// and the LUN: SIGSTOP freezes it past its lease, as a hung host would be.
const fenceChildEnv = "KAYO_FENCE_CHILD"

// TestFenceNodeChild is Y-21's process in TestFencedMountStopsTheNodesVMs
// (it does nothing in a normal run): it mounts the volume as Y-21 with the
// engine's options and writes until its writes fail, then waits for its
// VM on the volume to read failed.
func TestFenceNodeChild(t *testing.T) {
	if os.Getenv(fenceChildEnv) == "" {
		t.Skip("helper process of TestFencedMountStopsTheNodesVMs")
	}
	say := func(f string, a ...any) { fmt.Printf(f+"\n", a...) }
	ctx := context.Background()
	e, err := openT(Config{DataDir: os.Getenv("KAYO_FENCE_DIR")})
	if err != nil {
		say("FAIL open: %v", err)
		return
	}
	defer e.Close()
	v, err := e.GetVolume(ctx, os.Getenv("KAYO_FENCE_VOLUME"))
	if err != nil {
		say("FAIL volume: %v", err)
		return
	}
	fd, o, err := e.OpenVolumeMount(v)
	if err != nil {
		say("FAIL open volume: %v", err)
		return
	}
	defer fd.Close()
	fv, err := kayofs.Mount(fd, "Y-21-2k8x64", o)
	if err != nil {
		say("FAIL mount: %v", err)
		return
	}
	say("MOUNTED %d", fv.Slot())
	for k := 0; ; k++ {
		err := func() error {
			f, err := fv.Create(fmt.Sprintf("Y21-%d", k))
			if err != nil {
				return err
			}
			if _, err := f.WriteAt([]byte("written by Y-21"), 0); err != nil {
				return err
			}
			return f.Sync()
		}()
		if err != nil {
			say("REFUSED %v", err)
			break
		}
		if k == 0 {
			say("WRITING")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if vm, err := e.GetVM(ctx, "HVCLUSTER", "WEB01"); err == nil && vm.Status == StatusFailed {
			say("STOPPED %s", vm.StatusReason)
			return
		}
	}
	say("FAIL WEB01 still runs a minute after the fence")
}

// TestFencedMountStopsTheNodesVMs: Y-21's process mounts a volume on a
// LUN by path (on-disk leases) and is frozen (SIGSTOP) while it holds the
// metadata lease; Y-22 mounts and writes, so it waits for Y-21's lease to
// expire plus the margin and recovers Y-21's slot. Resumed, Y-21's mount
// finds it fenced itself and stops Y-21's VM on the volume. The history
// tells all three (Y-22 waits, Y-22 recovered Y-21's journal, Y-21 fenced
// itself, stopping WEB01), WEB01 reads failed with the reason, and Y-22's
// WEB02 still runs.
func TestFencedMountStopsTheNodesVMs(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a volume lease (15 s)")
	}
	ctx := context.Background()
	dir := t.TempDir()
	e, err := openT(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	mustHosts(t, e, seedSpec("Y-21-2k8x64", 21), seedSpec("Y-22-2k8x64", 22))
	if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", "Y-21-2k8x64", "Y-22-2k8x64")); err != nil {
		t.Fatal(err)
	}
	v, err := e.CreateVolume(ctx, sharedLUNVolume(t, 200))
	if err != nil {
		t.Fatal(err)
	}
	requireLeaseDirectIO(t, v.Device)
	for _, s := range []struct{ name, node string }{{"WEB01", "Y-21-2k8x64"}, {"WEB02", "Y-22-2k8x64"}} {
		spec := vmSpec(v, s.name, 1024)
		spec.OwnerNode = s.node
		if vm := mustVM(t, e, spec); vm.Node != s.node || vm.Status != VMRunning {
			t.Fatalf("%s: on %s, %s; want running on %s", s.name, vm.Node, vm.Status, s.node)
		}
	}
	e.ReleaseMounts()

	child := startFenceChild(t, dir, v.ID)
	child.waitFor(t, "WRITING", 60*time.Second)
	if err := child.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()

	// Y-22 on "another machine": its own direct-I/O descriptor, the
	// engine's options for the volume (so its events are recorded).
	fd, err := kayofs.OpenDeviceDirect(v.Device)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fd.Close() })
	sb, err := kayofs.ReadSuperblock(fd)
	if err != nil {
		t.Fatal(err)
	}
	o, _ := e.MountOptions(v, sb)
	y22, err := kayofs.Mount(fd, "Y-22-2k8x64", o)
	if err != nil {
		t.Fatal(err)
	}
	if err := y22.Mkdir("after-Y21-froze"); err != nil {
		t.Fatal(err)
	}
	took := time.Since(frozen)
	if took < VolumeLeaseTimeout {
		t.Errorf("Y-22 wrote %v after Y-21 froze, before Y-21's lease (%v) could expire", took, VolumeLeaseTimeout)
	}
	if err := y22.Unmount(); err != nil {
		t.Fatal(err)
	}
	if err := child.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	<-child.done
	out := strings.Join(child.snapshot(), "\n")
	if !strings.Contains(out, "REFUSED") || !strings.Contains(out, "STOPPED") {
		t.Fatalf("Y-21's process did not fence itself and stop WEB01:\n%s", out)
	}

	want := map[string]func(Event) bool{
		EventVolumeRecoveryWait: func(ev Event) bool {
			return ev.Detail["node"] == "Y-22-2k8x64" && ev.Detail["peer"] == "Y-21-2k8x64" && ev.Detail["wait"] != ""
		},
		EventVolumeJournalRecovered: func(ev Event) bool {
			return ev.Detail["node"] == "Y-22-2k8x64" && ev.Detail["peer"] == "Y-21-2k8x64"
		},
		EventVolumeNodeFenced: func(ev Event) bool {
			return ev.Detail["node"] == "Y-21-2k8x64" && ev.Detail["vms_stopping"] == "WEB01"
		},
		EventVMFailed: func(ev Event) bool {
			return ev.Subject == "WEB01" && strings.Contains(ev.Detail["reason"], "fenced itself on volume")
		},
	}
	var evs []Event
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if evs, err = e.Events(ctx); err != nil {
			t.Fatal(err)
		}
		found := map[string]int{}
		for _, ev := range evs {
			if f := want[ev.Kind]; f != nil && f(ev) {
				found[ev.Kind]++
			}
		}
		if len(found) == len(want) {
			for k, n := range found {
				if n != 1 && k != EventVMFailed {
					t.Errorf("%d events %s, want 1", n, k)
				}
			}
			break
		}
		if time.Now().After(end) {
			for _, ev := range evs {
				t.Logf("event %s %s %v", ev.Kind, ev.Subject, ev.Detail)
			}
			t.Fatalf("events found %v, want each of %d kinds", found, len(want))
		}
	}
	for _, ev := range evs {
		if want[ev.Kind] != nil {
			t.Logf("%s %s: %s", ev.Kind, ev.Subject, ev.Detail)
		}
	}
	web01, err := e.GetVM(ctx, "HVCLUSTER", "WEB01")
	if err != nil || web01.Status != StatusFailed || !strings.Contains(web01.StatusReason, "fenced itself") {
		t.Errorf("WEB01: %s (%q, %v); want failed, saying Y-21 fenced itself", web01.Status, web01.StatusReason, err)
	}
	web02, err := e.GetVM(ctx, "HVCLUSTER", "WEB02")
	if err != nil || web02.Status != VMRunning {
		t.Errorf("WEB02 on Y-22: %s (%v); want still running", web02.Status, err)
	}
}

// requireLeaseDirectIO skips (fails under CI=true) where the test's
// images refuse O_DIRECT (tmpfs before Linux 6.6).
func requireLeaseDirectIO(t *testing.T, path string) {
	t.Helper()
	d, err := kayofs.OpenDeviceDirect(path)
	if err == nil {
		_ = d.Close()
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("direct I/O on %s: %v (CI must run the fencing test)", path, err)
	}
	t.Skipf("direct I/O on %s: %v", path, err)
}

type fenceChild struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func startFenceChild(t *testing.T, dir, vol string) *fenceChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFenceNodeChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), fenceChildEnv+"=1", "KAYO_FENCE_DIR="+dir, "KAYO_FENCE_VOLUME="+vol)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &fenceChild{cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		<-c.done
	})
	return c
}

func (c *fenceChild) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.lines...)
}

func (c *fenceChild) waitFor(t *testing.T, prefix string, limit time.Duration) {
	t.Helper()
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		for _, l := range c.snapshot() {
			if strings.HasPrefix(l, prefix) {
				return
			}
			if strings.HasPrefix(l, "FAIL") {
				t.Fatalf("Y-21's process: %s", l)
			}
		}
		select {
		case <-c.done:
			t.Fatalf("Y-21's process ended:\n%s", strings.Join(c.snapshot(), "\n"))
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("Y-21's process did not say %s in %v:\n%s", prefix, limit, strings.Join(c.snapshot(), "\n"))
}
