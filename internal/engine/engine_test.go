package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
)

var fixedNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newMem(t *testing.T) *Engine {
	t.Helper()
	e, err := openT(Config{Store: memstore.New(), Clock: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func seedSpec(name string, octet int) HostSpec {
	return HostSpec{
		Name: name, Address: fmt.Sprintf("192.0.2.%d", octet), OSEdition: "enterprise",
		ProcessorVendor: "intel", ProcessorModel: "Xeon E5440", ProcessorCores: 8, MemoryMB: 32768,
		Features: []string{"Hyper-V", "Failover-Clustering"},
		Adapters: []Adapter{
			{Name: "Public", Network: "192.0.2.0/24", Address: fmt.Sprintf("192.0.2.%d", octet)},
			{Name: "Heartbeat", Network: "10.10.10.0/24", Address: fmt.Sprintf("10.10.10.%d", octet)},
		},
	}
}

func seedCluster(name string, nodes ...string) ClusterSpec {
	return ClusterSpec{Name: name, Nodes: nodes, StaticAddress: "192.0.2.50/24",
		Hypervisor: HypervisorSimulator, HeartbeatTimeoutSeconds: 10}
}

func mustHosts(t *testing.T, e *Engine, specs ...HostSpec) {
	t.Helper()
	for _, s := range specs {
		if _, err := e.CreateHost(context.Background(), s); err != nil {
			t.Fatalf("CreateHost(%s): %v", s.Name, err)
		}
	}
}

func TestCheckHostSpec(t *testing.T) {
	mod := func(f func(*HostSpec)) HostSpec { s := seedSpec("Y-21-2k8x64", 21); f(&s); return s }
	cases := []struct {
		name string
		spec HostSpec
		attr string // "" = valid
		val  string
	}{
		{"seed host", seedSpec("Y-21-2k8x64", 21), "", ""},
		{"bad name", mod(func(s *HostSpec) { s.Name = "Y_21" }), "name", "Y_21"},
		{"leading hyphen", mod(func(s *HostSpec) { s.Name = "-Y21" }), "name", "-Y21"},
		{"bad address", mod(func(s *HostSpec) { s.Address = "192.0.2" }), "address", "192.0.2"},
		{"edition", mod(func(s *HostSpec) { s.OSEdition = "web" }), "os_edition", "web"},
		{"vendor", mod(func(s *HostSpec) { s.ProcessorVendor = "arm" }), "processor_vendor", "arm"},
		{"cores", mod(func(s *HostSpec) { s.ProcessorCores = 0 }), "processor_cores", "0"},
		{"memory", mod(func(s *HostSpec) { s.MemoryMB = 256 }), "memory_mb", "256"},
		{"network with host bits", mod(func(s *HostSpec) { s.Adapters[0].Network = "192.0.2.1/24" }),
			"network_adapters[0].network", "192.0.2.1/24"},
		{"address outside network", mod(func(s *HostSpec) { s.Adapters[1].Address = "10.10.11.1" }),
			"network_adapters[1].address", "10.10.11.1"},
		{"duplicate adapter name", mod(func(s *HostSpec) { s.Adapters[1].Name = "Public" }),
			"network_adapters[1].name", "Public"},
		{"one adapter is valid alone", mod(func(s *HostSpec) { s.Adapters = s.Adapters[:1] }), "", ""},
		{"standard edition is valid alone", mod(func(s *HostSpec) { s.OSEdition = "standard" }), "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckHostSpec(tc.spec)
			if tc.attr == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			var ie *InputError
			if !errors.As(err, &ie) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("want an InputError, got %v", err)
			}
			if ie.Attribute != tc.attr || ie.Value != tc.val {
				t.Fatalf("error names %s=%q, want %s=%q (%v)", ie.Attribute, ie.Value, tc.attr, tc.val, err)
			}
			if !strings.Contains(err.Error(), "allowed") {
				t.Fatalf("error does not say what is allowed: %v", err)
			}
		})
	}
}

func TestHostCRUD(t *testing.T) {
	ctx := context.Background()
	e := newMem(t)
	mustHosts(t, e, seedSpec("Y-21-2k8x64", 21))
	if _, err := e.CreateHost(ctx, seedSpec("Y-21-2k8x64", 21)); !errors.Is(err, ErrExists) {
		t.Fatalf("second CreateHost: want ErrExists, got %v", err)
	}
	s := seedSpec("Y-21-2k8x64", 21)
	s.Features = []string{"Failover-Clustering", "Hyper-V", "Hyper-V"}
	s.MemoryMB = 65536
	s.Maintenance = true
	h, err := e.UpdateHost(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if h.MemoryMB != 65536 || h.State() != HostMaintenance || len(h.Features) != 2 || h.Features[0] != "Failover-Clustering" {
		t.Fatalf("update not applied or not normalized: %+v", h)
	}
	got, err := e.GetHost(ctx, "Y-21-2k8x64")
	if err != nil || got.MemoryMB != 65536 || got.Revision != h.Revision {
		t.Fatalf("GetHost = %+v, %v", got, err)
	}
	if err := e.DeleteHost(ctx, "Y-21-2k8x64"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.GetHost(ctx, "Y-21-2k8x64"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: want ErrNotFound, got %v", err)
	}
	if _, err := e.UpdateHost(ctx, s); !errors.Is(err, ErrNotFound) {
		t.Fatalf("update of a missing host: want ErrNotFound, got %v", err)
	}
}

func TestClusterLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newMem(t)
	mustHosts(t, e, seedSpec("Y-21-2k8x64", 21), seedSpec("Y-22-2k8x64", 22), seedSpec("Y-23-2k8x64", 23))

	c, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", "Y-22-2k8x64", "Y-21-2k8x64"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Nodes[0] != "Y-21-2k8x64" || len(c.Validation) == 0 {
		t.Fatalf("cluster = %+v", c)
	}
	for _, tst := range c.Validation {
		if tst.Result != validate.Passed {
			t.Errorf("seed validation: %s is %s: %s", tst.Name, tst.Result, tst.Message)
		}
	}
	if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", "Y-23-2k8x64")); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate cluster: want ErrExists, got %v", err)
	}
	// A node of one cluster cannot form another.
	other := seedCluster("OTHER", "Y-21-2k8x64")
	other.StaticAddress = "192.0.2.60/24"
	if _, err := e.CreateCluster(ctx, other); !errors.Is(err, ErrValidationFailed) ||
		!strings.Contains(err.Error(), `already a node of cluster "HVCLUSTER"`) {
		t.Fatalf("host of another cluster: got %v", err)
	}
	// Nor may a host leave while it is a node.
	if err := e.DeleteHost(ctx, "Y-21-2k8x64"); !errors.Is(err, ErrInUse) {
		t.Fatalf("delete of a node: want ErrInUse, got %v", err)
	}
	// Add a node and remove another in one update.
	c, err = e.UpdateCluster(ctx, seedCluster("HVCLUSTER", "Y-22-2k8x64", "Y-23-2k8x64"))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"Y-21-2k8x64": "", "Y-22-2k8x64": "HVCLUSTER", "Y-23-2k8x64": "HVCLUSTER"} {
		h, err := e.GetHost(ctx, name)
		if err != nil || h.Cluster != want {
			t.Fatalf("%s cluster = %q (%v), want %q", name, h.Cluster, err, want)
		}
	}
	// A host change that would break the cluster's validation is refused.
	bad := seedSpec("Y-23-2k8x64", 23)
	bad.Features = []string{"Hyper-V"}
	if _, err := e.UpdateHost(ctx, bad); !errors.Is(err, ErrValidationFailed) {
		t.Fatalf("breaking host update: want ErrValidationFailed, got %v", err)
	}
	if err := e.DeleteCluster(ctx, "HVCLUSTER"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"Y-22-2k8x64", "Y-23-2k8x64"} {
		if h, _ := e.GetHost(ctx, n); h.Cluster != "" {
			t.Fatalf("%s still in %q after the cluster was destroyed", n, h.Cluster)
		}
	}
	// The history records every change, in commit order.
	evs, err := e.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for i, ev := range evs {
		if i > 0 && ev.Revision < evs[i-1].Revision {
			t.Fatalf("events out of order: %d after %d", ev.Revision, evs[i-1].Revision)
		}
		kinds = append(kinds, ev.Kind)
	}
	want := []string{EventHostRegistered, EventHostRegistered, EventHostRegistered, EventClusterFormed,
		EventClusterUpdated, EventNodeAdded, EventNodeRemoved, EventClusterDestroyed}
	if strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Fatalf("events = %v\nwant     %v", kinds, want)
	}
}

func TestCreateClusterListsEveryFailedTest(t *testing.T) {
	ctx := context.Background()
	e := newMem(t)
	a := seedSpec("Y-21-2k8x64", 21)
	a.OSEdition = "standard"
	b := seedSpec("Y-22-2k8x64", 22)
	b.Adapters = b.Adapters[:1]
	b.Features = []string{"Hyper-V"}
	mustHosts(t, e, a, b)
	_, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", "Y-21-2k8x64", "Y-22-2k8x64", "Y-99-2k8x64"))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a ValidationError, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"standard", "Failover-Clustering", "1 network adapter", "Y-99-2k8x64"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if cs, _ := e.ListClusters(ctx); len(cs) != 0 {
		t.Fatalf("a refused cluster was written: %+v", cs)
	}
	for _, n := range []string{"Y-21-2k8x64", "Y-22-2k8x64"} {
		if h, _ := e.GetHost(ctx, n); h.Cluster != "" {
			t.Fatalf("%s joined a refused cluster", n)
		}
	}
}

func TestCheckClusterSpec(t *testing.T) {
	seventeen := make([]string, 17)
	for i := range seventeen {
		seventeen[i] = fmt.Sprintf("N%d", i)
	}
	cases := []struct {
		name string
		mod  func(*ClusterSpec)
		attr string
	}{
		{"valid", func(*ClusterSpec) {}, ""},
		{"16 characters", func(s *ClusterSpec) { s.Name = "HVCLUSTER-ABCDEF" }, "name"},
		{"all digits", func(s *ClusterSpec) { s.Name = "12345" }, "name"},
		{"no nodes", func(s *ClusterSpec) { s.Nodes = nil }, "nodes"},
		{"17 nodes", func(s *ClusterSpec) { s.Nodes = seventeen }, "nodes"},
		{"qemu", func(s *ClusterSpec) { s.Hypervisor = HypervisorQEMU }, ""},
		{"hyperv", func(s *ClusterSpec) { s.Hypervisor = "hyperv" }, "hypervisor"},
		{"heartbeat", func(s *ClusterSpec) { s.HeartbeatTimeoutSeconds = 0 }, "heartbeat_timeout_seconds"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := seedCluster("HVCLUSTER", "A", "B")
			tc.mod(&s)
			err := CheckClusterSpec(s)
			var ie *InputError
			switch {
			case tc.attr == "" && err != nil:
				t.Fatalf("want valid, got %v", err)
			case tc.attr != "" && (!errors.As(err, &ie) || ie.Attribute != tc.attr):
				t.Fatalf("want an error on %s, got %v", tc.attr, err)
			}
		})
	}
}

// Two clusters racing for the same hosts: exactly one forms.
func TestConcurrentFormationOneWins(t *testing.T) {
	ctx := context.Background()
	e := newMem(t)
	mustHosts(t, e, seedSpec("Y-21-2k8x64", 21), seedSpec("Y-22-2k8x64", 22))
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := seedCluster(fmt.Sprintf("C%d", i), "Y-21-2k8x64", "Y-22-2k8x64")
			s.StaticAddress = fmt.Sprintf("192.0.2.%d/24", 100+i)
			_, errs[i] = e.CreateCluster(ctx, s)
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		if err == nil {
			won++
		} else if !errors.Is(err, ErrValidationFailed) {
			t.Errorf("loser failed unclearly: %v", err)
		}
	}
	if cs, _ := e.ListClusters(ctx); won != 1 || len(cs) != 1 {
		t.Fatalf("%d formations succeeded, %d clusters stored; want exactly 1", won, len(cs))
	}
}

// The embedded default: the database file lives in data_dir and survives
// reopening.
func TestOpenEmbedded(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "nested", ".kayo")
	e, err := openT(Config{DataDir: dir, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mustHosts(t, e, seedSpec("Y-21-2k8x64", 21))
	e.Close()
	e2, err := openT(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if _, err := e2.GetHost(ctx, "Y-21-2k8x64"); err != nil {
		t.Fatalf("host lost across reopen: %v", err)
	}
	if e2.DataDir() != dir {
		t.Fatalf("DataDir = %q, want %q", e2.DataDir(), dir)
	}
}
