//go:build linux

package engine

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// TestQEMUAgentRestartStopsVMsVisibly runs the node agents as `kayoctl
// agent` processes with the test guest. Their QEMU processes end with
// them, and the database says so at once:
//   - SIGTERM: the agent records each VM it stopped (an event naming the
//     VM and why, the VM's status off with the reason) before it exits;
//   - SIGKILL: the next agent of the node finds the VM's record running
//     and marks the VM failed, with the reason, before it accepts work.
//
// Either way the VM reads stopped (the provider then plans state off →
// running) and an update of the unchanged spec boots it again.
func TestQEMUAgentRestartStopsVMsVisibly(t *testing.T) {
	if testing.Short() {
		t.Skip("QEMU process test")
	}
	guest := qemutest.Guest(t)
	dir := t.TempDir()
	e, err := openT(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
	cs := seedCluster("HVCLUSTER", y21, y22)
	cs.Hypervisor = HypervisorQEMU
	cs.HeartbeatTimeoutSeconds = 30 // Y-21 stays up across its agent's restarts (no failover)
	if _, err := e.CreateCluster(ctx, cs); err != nil {
		t.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 8, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 8})
	if err != nil {
		t.Fatal(err)
	}
	agents := qemutest.StartAgents(t, dir, guest, y21, y22)
	kayoctl := testcli.Build(t, "./cmd/kayoctl")
	s := vmSpec(vol, "WEB01", 128)
	s.ProcessorCount, s.VHD.SizeGiB, s.OwnerNode, s.Adapters = 1, 1, y21, nil
	if _, err := e.CreateVM(ctx, s); err != nil {
		t.Fatal(err)
	}
	serial := qemutest.SerialPath(dir, y21, "WEB01")
	if err := qemutest.WaitCounter(ctx, serial, 2); err != nil {
		t.Fatal(err)
	}

	// pid is the live QEMU of WEB01 on Y-21.
	pid := func() int {
		t.Helper()
		recs, err := e.QEMUNodeVMs(ctx, "HVCLUSTER", "WEB01")
		if err != nil || len(recs) != 1 || recs[0].Node != y21 || !qemutest.Alive(recs[0].PID) {
			t.Fatalf("QEMU of WEB01: %+v %v, want one live process on %s", recs, err, y21)
		}
		return recs[0].PID
	}
	// stopped checks what reads say right after the agent is gone.
	stopped := func(how string, p int, status, reason string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for qemutest.Alive(p) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if qemutest.Alive(p) {
			t.Fatalf("%s: QEMU pid %d still runs after its agent ended", how, p)
		}
		vm, err := e.RefreshVM(ctx, "HVCLUSTER", "WEB01")
		if err != nil {
			t.Fatal(err)
		}
		if vm.Status != status || !strings.Contains(vm.StatusReason, reason) || !strings.Contains(vm.StatusReason, y21) {
			t.Fatalf("%s: VM reads %s (%q); want %s with a reason naming %s and %q", how, vm.Status, vm.StatusReason, status, y21, reason)
		}
		t.Logf("%s: VM reads %s: %s", how, vm.Status, vm.StatusReason)
		out, err := exec.CommandContext(ctx, kayoctl, "--data-dir", dir, "vm", "list", "--json").Output()
		var listed []struct{ Name, Status string }
		if err == nil {
			err = json.Unmarshal(out, &listed)
		}
		if err != nil || len(listed) != 1 || listed[0].Status != status {
			t.Fatalf("%s: kayoctl vm list --json: %s %v, want WEB01 %s", how, out, err, status)
		}
		if procs, _ := e.QEMUProcesses(ctx, "HVCLUSTER", "WEB01"); len(procs) != 0 {
			t.Fatalf("%s: QEMU processes recorded after the agent ended: %v", how, procs)
		}
		evs, err := e.Events(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ev := range evs {
			if ev.Kind == EventVMQEMUStopped && ev.Subject == "WEB01" && ev.Detail["node"] == y21 && ev.Detail["pid"] == strconv.Itoa(p) &&
				strings.Contains(ev.Detail["reason"], reason) {
				found = true
			}
		}
		if !found {
			t.Fatalf("%s: no %s event naming WEB01, %s, pid %d and why", how, EventVMQEMUStopped, y21, p)
		}
	}
	// restart boots the guest again by an update of the unchanged spec
	// (what apply does for the plan state off → running).
	restart := func(how string) {
		t.Helper()
		before := qemutest.Counters(serial)
		vm, err := e.UpdateVM(ctx, s)
		if err != nil || vm.Status != VMRunning || vm.StatusReason != "" {
			t.Fatalf("%s: update: %s %q %v", how, vm.Status, vm.StatusReason, err)
		}
		for {
			c := qemutest.Counters(serial)
			if len(c) > 0 && len(before) > 0 && c[len(c)-1].ID != before[len(before)-1].ID {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s: no new boot after the update", how)
			case <-time.After(50 * time.Millisecond):
			}
		}
		pid()
	}

	// SIGTERM: recorded by the stopping agent itself.
	p := pid()
	agents[0].Stop(t)
	stopped("SIGTERM", p, VMOff, "shut down")
	y21Agent := qemutest.StartAgents(t, dir, guest, y21)[0]
	if vm, err := e.RefreshVM(ctx, "HVCLUSTER", "WEB01"); err != nil || vm.Status != VMOff {
		t.Fatalf("after the agent restarted: %s %v, want off until an update starts it", vm.Status, err)
	}
	restart("SIGTERM")

	// SIGKILL: nothing recorded by the dying agent; the next one does.
	p = pid()
	if err := y21Agent.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = y21Agent.Cmd.Wait()
	// Until an agent runs there again, reads say failed (its heartbeat
	// goes stale), and an update cannot start it: a clear error.
	time.Sleep(QEMUAgentTimeout + 500*time.Millisecond)
	if vm, err := e.RefreshVM(ctx, "HVCLUSTER", "WEB01"); err != nil || vm.Status != StatusFailed || !strings.Contains(vm.StatusReason, "node agent") {
		t.Fatalf("agent killed, not restarted: VM reads %s (%q) %v, want failed naming the node agent", vm.Status, vm.StatusReason, err)
	}
	if vms, err := e.ObservedVMs(ctx, "HVCLUSTER"); err != nil || len(vms) != 1 || vms[0].Status != StatusFailed {
		t.Fatalf("agent killed, not restarted: kayoctl vm list reads %+v %v, want failed", vms, err)
	}
	if _, err := e.UpdateVM(ctx, s); !errors.Is(err, ErrAgentDown) {
		t.Fatalf("update while the agent is down: %v, want %v", err, ErrAgentDown)
	}
	qemutest.StartAgents(t, dir, guest, y21)
	stopped("SIGKILL", p, StatusFailed, "stopped without recording it")
	restart("SIGKILL")
}
