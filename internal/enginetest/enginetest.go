// Package enginetest holds what tests of the engine's callers share (the
// node agent's, the QEMU runner's): the seed's hosts and cluster, an
// injected clock, a store without leases. The engine's own tests keep
// theirs (internal/engine/engine_test.go): they cannot import a package
// that imports the engine. Only tests import this package.
package enginetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
	"github.com/kayo-labs/terraform-provider-kayo/internal/nodeagent/workexec"
)

// The seed's hosts.
const (
	Y21 = "Y-21-2k8x64"
	Y22 = "Y-22-2k8x64"
	Y23 = "Y-23-2k8x64"
)

// FixedNow is where injected clocks start.
var FixedNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// SeedSpec is the seed's host name with addresses ending in octet.
func SeedSpec(name string, octet int) engine.HostSpec {
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

// SeedCluster is the seed's cluster of nodes (simulator).
func SeedCluster(name string, nodes ...string) engine.ClusterSpec {
	return engine.ClusterSpec{Name: name, Nodes: nodes, StaticAddress: "192.0.2.50/24",
		Hypervisor: engine.HypervisorSimulator, HeartbeatTimeoutSeconds: 10}
}

// MustHosts registers the hosts.
func MustHosts(t testing.TB, e *engine.Engine, specs ...engine.HostSpec) {
	t.Helper()
	for _, s := range specs {
		if _, err := e.CreateHost(context.Background(), s); err != nil {
			t.Fatalf("CreateHost(%s): %v", s.Name, err)
		}
	}
}

// ThreeNodes registers Y-21..Y-23 and forms HVCLUSTER of them with the
// heartbeat timeout in seconds.
func ThreeNodes(t testing.TB, e *engine.Engine, timeout int) {
	t.Helper()
	MustHosts(t, e, SeedSpec(Y21, 21), SeedSpec(Y22, 22), SeedSpec(Y23, 23))
	s := SeedCluster("HVCLUSTER", Y21, Y22, Y23)
	s.HeartbeatTimeoutSeconds = timeout
	if _, err := e.CreateCluster(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

// VMSpec is a running VM of vol's cluster with its VHD on vol.
func VMSpec(vol engine.Volume, name string, mem int64) engine.VMSpec {
	return engine.VMSpec{Cluster: vol.Cluster, Volume: vol.ID, Name: name, MemoryMB: mem, ProcessorCount: 2,
		VHD: engine.VHDSpec{SizeGiB: 40, Type: engine.VHDDynamic}, Adapters: []engine.VMAdapter{{Switch: "Public"}},
		AntiAffinityMode: "preferred", Migration: engine.MigrationLive, State: engine.VMRunning,
		Failback: engine.FailbackSpec{Mode: engine.FailbackPrevent}, MaxFailures: 1, FailurePeriodHours: 6}
}

// Kinds lists the events whose kind starts with one of prefixes, as
// "kind subject".
func Kinds(t testing.TB, e *engine.Engine, prefixes ...string) []string {
	t.Helper()
	evs, err := e.Events(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		for _, p := range prefixes {
			if strings.HasPrefix(ev.Kind, p) {
				out = append(out, ev.Kind+" "+ev.Subject)
				break
			}
		}
	}
	return out
}

// FakeClock is an injected clock tests move by hand.
type FakeClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewFakeClock is a clock at t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{t: t} }

// Now is the clock's time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// NoLeases hides a store's leases (store.Leaser).
type NoLeases struct{ store.Store }

// AgentModes: leader leases held under store leases, and lease records
// judged by the clock (a store without leases).
var AgentModes = []struct {
	Name   string
	Leases bool
}{{"store-leases", true}, {"records", false}}

// NewClocked is an engine on a memstore with a clock the test moves (the
// store's leases expire by it too); leases false hides the store's leases.
func NewClocked(t testing.TB, leases bool) (*engine.Engine, *FakeClock) {
	t.Helper()
	clk := NewFakeClock(FixedNow)
	ms := memstore.New()
	ms.SetClock(clk.Now)
	var st store.Store = ms
	if !leases {
		st = NoLeases{ms}
	}
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, Store: st, Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e, clk
}

// OpenEtcd is an engine on etcd at eps under prefix.
func OpenEtcd(t testing.TB, eps []string, prefix string) *engine.Engine {
	t.Helper()
	e, err := engine.Open(engine.Config{LocalExecutor: workexec.Local, DataDir: t.TempDir(), Etcd: &store.EtcdOptions{Endpoints: eps, Prefix: prefix}})
	if err != nil {
		t.Fatalf("Open on etcd: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}
