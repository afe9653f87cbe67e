//go:build unix

package main

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// A real `kayoctl agent` reports this machine (processor, memory) into the
// cluster database, and validation then holds the declared facts to it:
// adding the host, declared as the seed's 32 GiB Xeon, fails naming the
// fact and both values unless this machine happens to be one.
func TestAgentReportsItsMachine(t *testing.T) {
	bin := testcli.Build(t, "./cmd/kayoctl")
	dir := newDataDir(t, 2)
	const node = "Y-24-2k8x64" // registered, not yet a node
	p := &agentProc{node: node}
	p.cmd = exec.Command(bin, "--data-dir", dir, "agent", "--node", node, "--interval", agentInterval.String())
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	want, err := hostfacts.Collect(context.Background(), hostfacts.Options{QEMU: "-"})
	if err != nil {
		t.Fatal(err)
	}
	var got hostfacts.Report
	deadline := time.Now().Add(30 * time.Second)
	for {
		e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
		if err == nil {
			got, _, err = e.HostReport(context.Background(), node)
			_ = e.Close()
		}
		if err == nil {
			break
		}
		if !errors.Is(err, engine.ErrNotFound) || time.Now().After(deadline) {
			t.Fatalf("report of %s: %v\nagent log:\n%s", node, err, p.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got.MemoryMB != want.MemoryMB || got.ProcessorCores != want.ProcessorCores || got.ProcessorVendor != want.ProcessorVendor ||
		len(got.CPUFlags) != len(want.CPUFlags) {
		t.Fatalf("reported %+v, want this machine's %+v", got, want)
	}
	if !strings.Contains(p.log(), "reported this machine") {
		t.Errorf("agent log does not say it reported:\n%s", p.log())
	}
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if want.MemoryMB == 32768 {
		t.Skip("this machine is a 32 GiB one: the declared memory matches")
	}
	_, err = e.UpdateCluster(context.Background(), engine.ClusterSpec{Name: "HVCLUSTER", Nodes: append(threeNodes[:3:3], node),
		StaticAddress: "192.0.2.50/24", Hypervisor: engine.HypervisorSimulator, HeartbeatTimeoutSeconds: 2})
	if err == nil || !strings.Contains(err.Error(), `host "Y-24-2k8x64" declares memory_mb 32768 but its agent reports`) {
		t.Fatalf("adding a node whose report contradicts its declared memory: %v", err)
	}
}
