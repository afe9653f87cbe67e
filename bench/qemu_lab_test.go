package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/netnsrig"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// qemuKayo is the kayo side of the QEMU benchmarks: a data dir with the
// seed's two hosts in a qemu cluster, volume O:, both nodes' agents, and
// the guest (spec).
type qemuKayo struct {
	e      *engine.Engine
	dir    string
	vol    string
	spec   engine.VMSpec
	nodes  []string
	id     string
	n      int
	agents []*qemutest.Agent
	closed bool
}

// close stops the agents (and with them the guest) and the engine.
func (k *qemuKayo) close(b testing.TB) {
	if k.closed {
		return
	}
	k.closed = true
	for _, a := range k.agents {
		a.Stop(b)
	}
	_ = k.e.Close()
}

// labNet puts a lab's nodes on a network: each node a host (network
// namespace) of rig, on its "Public" network at 192.0.2.21+i (live
// migrations go there) and its "VMNet" network at <prefix>.21+i, where
// the cluster's external switch VMNet binds (subnet <prefix>.0/24). The
// machine's own stack is <prefix>.1 on it (rig.Gateway), so the benchmark
// reaches the guests over the switch.
type labNet struct {
	rig    *netnsrig.Rig
	prefix string // "10.79.0"
}

// addr is the address .last on the VMNet network.
func (n *labNet) addr(last int) string { return fmt.Sprintf("%s.%d", n.prefix, last) }

// newQEMULab is the engine of a qemu cluster of two nodes with volume O:
// of volGiB and the agents of both running: in this process's network
// namespace, or each in its rig host when net is set (with switch VMNet).
func newQEMULab(b testing.TB, guestDir string, volGiB int64, net *labNet) *qemuKayo {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	names := []string{"Y-21-2k8x64", "Y-22-2k8x64"}
	for i, n := range names {
		oct := 21 + i
		h := engine.HostSpec{Name: n, Address: fmt.Sprintf("192.0.2.%d", oct), OSEdition: "enterprise",
			ProcessorVendor: "intel", ProcessorModel: "Xeon E5440", ProcessorCores: 8, MemoryMB: 32768,
			Features: []string{"Hyper-V", "Failover-Clustering"},
			Adapters: []engine.Adapter{{Name: "Public", Network: "192.0.2.0/24", Address: fmt.Sprintf("192.0.2.%d", oct)},
				{Name: "Heartbeat", Network: "10.10.10.0/24", Address: fmt.Sprintf("10.10.10.%d", oct)}}}
		if net != nil {
			h.Adapters = append(h.Adapters, engine.Adapter{Name: "VMNet", Network: net.addr(0) + "/24", Address: net.addr(oct)})
		}
		if _, err := e.CreateHost(ctx, h); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := e.CreateCluster(ctx, engine.ClusterSpec{Name: "HVCLUSTER", Nodes: names, StaticAddress: "192.0.2.50/24",
		Hypervisor: engine.HypervisorQEMU, HeartbeatTimeoutSeconds: 10}); err != nil {
		b.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, engine.VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: volGiB, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 8})
	if err != nil {
		b.Fatal(err)
	}
	k := &qemuKayo{e: e, dir: dir, vol: vol.ID, nodes: names}
	b.Cleanup(func() { k.close(b) })
	if net == nil {
		k.agents = qemutest.StartAgents(b, dir, guestDir, names...)
		return k
	}
	if _, err := e.CreateSwitch(ctx, engine.SwitchSpec{Cluster: "HVCLUSTER", Name: "VMNet", Type: engine.SwitchExternal,
		Adapter: "VMNet", Subnet: net.addr(0) + "/24"}); err != nil {
		b.Fatal(err)
	}
	for i, n := range names {
		h := net.rig.AddHost(n, map[string]netip.Prefix{
			"Public": netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", 21+i)),
			"VMNet":  netip.MustParsePrefix(net.addr(21+i) + "/24"),
		})
		k.agents = append(k.agents, qemutest.StartAgentIn(b, h.NS, dir, guestDir, n, "--migration-address", fmt.Sprintf("192.0.2.%d", 21+i)))
	}
	return k
}

// createVM creates k.spec, asking again while an agent is still coming
// up (its first heartbeat on the database may lag its log line).
func (k *qemuKayo) createVM(ctx context.Context, b testing.TB) engine.VM {
	b.Helper()
	for {
		vm, err := k.e.CreateVM(ctx, k.spec)
		if err == nil {
			return vm
		}
		if !errors.Is(err, engine.ErrAgentDown) || ctx.Err() != nil {
			b.Fatalf("creating %s: %v", k.spec.Name, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func (k *qemuKayo) serial() string { return qemutest.SerialPath(k.dir, k.spec.OwnerNode, k.spec.Name) }
