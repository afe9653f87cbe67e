//go:build linux

package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
	"github.com/kayo-labs/terraform-provider-kayo/internal/netnsrig"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// Hosts as network namespaces, one reporting agent in each, sharing a
// file-backed LUN each reaches by a path of its own:
//   - Storage passes from the agents' probes; after Y-23's path goes,
//     "List Shared Storage" and "Validate Disk Access" fail naming it only;
//   - the declared facts and adapters match the namespaces': "Compare
//     Declared and Reported Inventory" passes from the reports;
//   - Y-23 leaves network_adapters out: its adapters are the interfaces
//     its agent reports in its namespace, and the agents' network probes
//     on them pass "Validate Network Communication";
//   - Y-22's declared memory then differs from what its agent reports:
//     the inventory test fails with both values, naming only Y-22.
func TestAgentsInNamespacesStorageInventoryAdapters(t *testing.T) {
	rig := netnsrig.New(t, "Public", "Heartbeat")
	bin := testcli.Build(t, "./cmd/kayoctl")
	dir := newDataDir(t, 5)
	ctx := context.Background()
	me, err := hostfacts.Collect(ctx, hostfacts.Options{QEMU: "-"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(engine.ProcessorVendors, me.ProcessorVendor) || me.ProcessorCores > 1024 || me.MemoryMB < 512 {
		t.Skipf("this machine (%s, %d cores, %d MB) cannot be declared as a kayo_host", me.ProcessorVendor, me.ProcessorCores, me.MemoryMB)
	}
	img := sparseLUN(t)
	paths := map[string]string{}
	hosts := map[string]*netnsrig.Host{}
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range threeNodes {
		paths[n] = filepath.Join(t.TempDir(), "lun")
		if err := os.Symlink(img, paths[n]); err != nil {
			t.Fatal(err)
		}
		// Declared as this machine.
		h, err := e.GetHost(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		s := h.HostSpec
		s.ProcessorVendor, s.ProcessorModel, s.ProcessorCores, s.MemoryMB = me.ProcessorVendor, me.ProcessorModel, me.ProcessorCores, me.MemoryMB
		if _, err := e.UpdateHost(ctx, s); err != nil {
			t.Fatal(err)
		}
		octet := 21 + i
		hosts[n] = rig.AddHost(n, map[string]netip.Prefix{
			"Public":    netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", octet)),
			"Heartbeat": netip.MustParsePrefix(fmt.Sprintf("10.10.10.%d/24", octet)),
		})
	}
	if _, err := e.CreateVolume(ctx, engine.VolumeSpec{Cluster: "HVCLUSTER", DevicePaths: paths, SizeGiB: 1, DriveLetter: "O",
		BlockSize: 4096, NodeSlots: 4, FileBacked: true}); err != nil {
		t.Fatal(err)
	}
	c, err := e.GetCluster(ctx, "HVCLUSTER")
	if err != nil {
		t.Fatal(err)
	}
	spec := c.ClusterSpec
	_ = e.Close()

	var agents []*agentProc
	for _, n := range threeNodes {
		agents = append(agents, startAgentCmd(t, n, hosts[n].Command(bin, "--data-dir", dir, "agent", "--node", n, "--interval", "250ms",
			"--storage-probe-interval=300ms")))
	}
	logs := func() string { return agentLogs(agents) }
	withEngine := func(fn func(*engine.Engine) error) error {
		e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
		if err != nil {
			return err
		}
		defer e.Close()
		return fn(e)
	}
	tests := func() map[string]validate.Test {
		out := map[string]validate.Test{}
		_ = withEngine(func(e *engine.Engine) error {
			pc, err := e.ValidateCluster(ctx, spec, false)
			for _, x := range pc.Report.Tests {
				out[x.Name] = x
			}
			return err
		})
		return out
	}
	waitFor := func(what string, ok func(map[string]validate.Test) bool) map[string]validate.Test {
		t.Helper()
		var last map[string]validate.Test
		for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
			if last = tests(); ok(last) {
				return last
			}
		}
		t.Fatalf("%s: never; last:\n%+v\nagent logs:\n%s", what, last, logs())
		return nil
	}

	passed := func(m map[string]validate.Test, names ...string) bool {
		for _, n := range names {
			if m[n].Result != validate.Passed || m[n].Source != validate.SourceProbed {
				return false
			}
		}
		return true
	}
	x := waitFor("storage, network and inventory pass from the agents", func(m map[string]validate.Test) bool {
		return passed(m, validate.TestSharedStorage, validate.TestDiskAccess, validate.TestNetworkCommunication, validate.TestReportedInventory)
	})
	t.Logf("inventory (declared adapters are the namespaces'): %s", x[validate.TestReportedInventory].Message)

	// Y-23 takes its adapters from its agent: the namespace's interfaces.
	if err := withEngine(func(e *engine.Engine) error {
		h, err := e.GetHost(ctx, "Y-23-2k8x64")
		if err != nil {
			return err
		}
		s := h.HostSpec
		s.Adapters, s.FromAgent = nil, []string{engine.FactNetworkAdapters}
		if h, err = e.UpdateHost(ctx, s); err != nil {
			return err
		}
		var got []string
		for _, a := range h.Adapters {
			got = append(got, a.Network+" "+a.Address)
		}
		slices.Sort(got)
		if want := []string{"10.10.10.0/24 10.10.10.23", "192.0.2.0/24 192.0.2.23"}; !slices.Equal(got, want) {
			return fmt.Errorf("Y-23's adapters from its agent: %v (%+v), want %v", got, h.Adapters, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	x = waitFor("network probes pass with Y-23's reported adapters", func(m map[string]validate.Test) bool {
		n := m[validate.TestNetworkCommunication]
		return n.Result == validate.Passed && n.Source == validate.SourceProbed && strings.Contains(n.Message, "12 probes answered")
	})
	t.Logf("network: %s", x[validate.TestNetworkCommunication].Message)

	// Y-22's declared memory no longer matches its machine.
	if err := withEngine(func(e *engine.Engine) error {
		h, err := e.GetHost(ctx, "Y-22-2k8x64")
		if err != nil {
			return err
		}
		h.MemoryMB = 2 * me.MemoryMB
		_, err = e.UpdateHost(ctx, h.HostSpec)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	x = waitFor("inventory fails on Y-22's memory", func(m map[string]validate.Test) bool {
		return m[validate.TestReportedInventory].Result == validate.Failed
	})
	inv := x[validate.TestReportedInventory]
	t.Logf("inventory: %s", inv.Message)
	if want := fmt.Sprintf(`host "Y-22-2k8x64" declares memory_mb %d but its agent reports %d`, 2*me.MemoryMB, me.MemoryMB); !strings.Contains(inv.Message, want) ||
		strings.Contains(inv.Message, `"Y-21-2k8x64"`) || strings.Contains(inv.Message, `"Y-23-2k8x64"`) {
		t.Errorf("inventory: %q, want only %q", inv.Message, want)
	}

	// Y-23 no longer sees the LUN.
	if err := os.Remove(paths["Y-23-2k8x64"]); err != nil {
		t.Fatal(err)
	}
	x = waitFor("the Storage test fails naming Y-23", func(m map[string]validate.Test) bool {
		list := m[validate.TestSharedStorage]
		return list.Result == validate.Failed && strings.Contains(list.Message, `node "Y-23-2k8x64" does not see the LUN of volume O:`) &&
			m[validate.TestDiskAccess].Result == validate.Failed
	})
	for _, name := range []string{validate.TestSharedStorage, validate.TestDiskAccess} {
		t.Logf("%s: %s", name, x[name].Message)
		if strings.Contains(x[name].Message, `"Y-21-2k8x64"`) || strings.Contains(x[name].Message, `"Y-22-2k8x64"`) {
			t.Errorf("%s names a node that sees the LUN: %s", name, x[name].Message)
		}
	}
}
