package qemurun

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/record"
)

// The seed's two hosts and their cluster, as the engine's tests make them
// (internal/engine/engine_test.go, internal/engine/vms_test.go).
const (
	y21 = "Y-21-2k8x64"
	y22 = "Y-22-2k8x64"
)

func seedSpec(name string, octet int) engine.HostSpec {
	return engine.HostSpec{
		Name: name, Address: fmt.Sprintf("192.0.2.%d", octet), OSEdition: "enterprise",
		ProcessorVendor: "intel", ProcessorModel: "Xeon E5440", ProcessorCores: 8, MemoryMB: 32768,
		Features: []string{"Hyper-V", "Failover-Clustering"},
		Adapters: []engine.Adapter{
			{Name: "Public", Network: "192.0.2.0/24", Address: fmt.Sprintf("192.0.2.%d", octet)},
			{Name: "Heartbeat", Network: "10.10.10.0/24", Address: fmt.Sprintf("10.10.10.%d", octet)},
		},
	}
}

func seedCluster(name string, nodes ...string) engine.ClusterSpec {
	return engine.ClusterSpec{Name: name, Nodes: nodes, StaticAddress: "192.0.2.50/24",
		Hypervisor: engine.HypervisorSimulator, HeartbeatTimeoutSeconds: 10}
}

func mustHosts(t *testing.T, e *engine.Engine, specs ...engine.HostSpec) {
	t.Helper()
	for _, s := range specs {
		if _, err := e.CreateHost(context.Background(), s); err != nil {
			t.Fatalf("CreateHost(%s): %v", s.Name, err)
		}
	}
}

func vmSpec(vol engine.Volume, name string, mem int64) engine.VMSpec {
	return engine.VMSpec{Cluster: vol.Cluster, Volume: vol.ID, Name: name, MemoryMB: mem, ProcessorCount: 2,
		VHD: engine.VHDSpec{SizeGiB: 40, Type: engine.VHDDynamic}, Adapters: []engine.VMAdapter{{Switch: "Public"}},
		AntiAffinityMode: "preferred", Migration: engine.MigrationLive, State: engine.VMRunning,
		Failback: engine.FailbackSpec{Mode: engine.FailbackPrevent}, MaxFailures: 1, FailurePeriodHours: 6}
}

// runnerUp says why node's runner is not up (nil: its heartbeat is fresh).
func runnerUp(ctx context.Context, e *engine.Engine, node string) error {
	var b qemu.AgentBeat
	if _, err := record.Get(ctx, e.Store(), qemu.AgentKey(node), &b); err != nil {
		return err
	}
	if !b.Stopped.IsZero() {
		return errors.New("stopped")
	}
	if age := e.Now().Sub(b.Time); age > qemu.AgentTimeout {
		return fmt.Errorf("last heartbeat %s ago", age.Round(time.Millisecond))
	}
	return nil
}

// vmFile reads a VHD file on a volume (as internal/engine/vms_files.go).
type vmFile struct{ *kayofs.File }

func (f vmFile) Allocate(off, n int64) error { return f.File.Allocate(off + n) }
