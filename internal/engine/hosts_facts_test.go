package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// undeclared is seedSpec with its hardware facts left to the agent.
func undeclared(name string, octet int) HostSpec {
	s := seedSpec(name, octet)
	s.ProcessorVendor, s.ProcessorModel, s.ProcessorCores, s.MemoryMB = "", "", 0, 0
	s.FromAgent = []string{FactMemoryMB, FactProcessorCores, FactProcessorModel, FactProcessorVendor}
	return s
}

// A host whose configuration leaves its hardware facts out takes them from
// its agent's report; without one it is refused naming the attribute; the
// values stay (no diff) until the machine changes, follow the agent when
// it does, and become declared again when the configuration gives them.
func TestHostFactsFromAgent(t *testing.T) {
	ctx := context.Background()
	e, err := openT(Config{Store: memstore.New(), DataDir: t.TempDir(), Clock: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var ie *InputError
	_, err = e.CreateHost(ctx, undeclared(y21, 21))
	if !errors.As(err, &ie) || ie.Attribute != FactMemoryMB ||
		!strings.Contains(err.Error(), `host "Y-21-2k8x64" declares no memory_mb and no node agent has reported its machine: set memory_mb, or run the host's agent`) {
		t.Fatalf("no declared memory and no agent: %v, want an InputError on memory_mb saying it needs a value or an agent", err)
	}
	if err := CheckHostSpec(HostSpec{Name: y21, Address: "192.0.2.21", OSEdition: "enterprise", FromAgent: []string{"features"}}); err == nil {
		t.Error("from_agent with a fact no agent fills was accepted")
	}
	rep := hostfacts.Report{Version: hostfacts.ReportVersion, ProcessorVendor: "amd", ProcessorModel: "AMD EPYC 7302",
		ProcessorCores: 16, MemoryMB: 64000, ReportedAt: fixedNow}
	if err := e.ReportHost(ctx, y21, rep); err != nil {
		t.Fatal(err)
	}
	h, err := e.CreateHost(ctx, undeclared(y21, 21))
	if err != nil {
		t.Fatal(err)
	}
	if h.ProcessorVendor != "amd" || h.ProcessorModel != "AMD EPYC 7302" || h.ProcessorCores != 16 || h.MemoryMB != 64000 {
		t.Fatalf("host from its report: %+v", h.HostSpec)
	}
	// The machine gains memory: the agent's next report updates the host.
	rep.MemoryMB = 128000
	if err := e.ReportHost(ctx, y21, rep); err != nil {
		t.Fatal(err)
	}
	if h, _ = e.GetHost(ctx, y21); h.MemoryMB != 128000 || h.ProcessorCores != 16 {
		t.Fatalf("after the machine changed: %+v", h.HostSpec)
	}
	// The agent goes away: the last reported values stay through an update.
	if _, err := e.st.Commit(ctx, nil, []store.Op{store.Del(hostReportKey(y21))}); err != nil {
		t.Fatal(err)
	}
	s := undeclared(y21, 21)
	s.Features = []string{"Hyper-V"}
	if h, err = e.UpdateHost(ctx, s); err != nil || h.MemoryMB != 128000 {
		t.Fatalf("update without an agent: %+v, %v; want the last reported memory kept", h.HostSpec, err)
	}
	// Declared again: the declared value, no longer the agent's.
	s.MemoryMB, s.FromAgent = 32768, []string{FactProcessorCores, FactProcessorModel, FactProcessorVendor}
	if h, err = e.UpdateHost(ctx, s); err != nil || h.MemoryMB != 32768 || len(h.FromAgent) != 3 {
		t.Fatalf("memory declared again: %+v, %v", h.HostSpec, err)
	}
	rep.MemoryMB = 1000
	if err := e.ReportHost(ctx, y21, rep); err != nil {
		t.Fatal(err)
	}
	if h, _ = e.GetHost(ctx, y21); h.MemoryMB != 32768 {
		t.Errorf("a declared memory followed the report: %d", h.MemoryMB)
	}
	// Left out again with no report to take it from: refused, naming it.
	if _, err := e.st.Commit(ctx, nil, []store.Op{store.Del(hostReportKey(y21))}); err != nil {
		t.Fatal(err)
	}
	s.MemoryMB, s.FromAgent = 0, append(s.FromAgent, FactMemoryMB)
	if _, err = e.UpdateHost(ctx, s); !errors.As(err, &ie) || ie.Attribute != FactMemoryMB {
		t.Errorf("a declared fact left out with no agent: %v, want an InputError on memory_mb", err)
	}
	// A reported value kayo_host does not allow must be declared.
	rep.ProcessorVendor = "hygongenuine"
	if err := e.ReportHost(ctx, y22, rep); err != nil {
		t.Fatal(err)
	}
	_, err = e.CreateHost(ctx, undeclared(y22, 22))
	if !errors.As(err, &ie) || ie.Attribute != FactProcessorVendor || !strings.Contains(err.Error(), `agent reports "hygongenuine"`) {
		t.Errorf("an unsupported reported vendor: %v", err)
	}
}

// A host that leaves network_adapters out takes the interfaces its agent
// reports: one adapter per interface with a usable address, in its subnet
// (of two addresses the one in the cluster's networks); none reported is
// refused naming the attribute; a changed address follows the agent.
func TestHostAdaptersFromAgent(t *testing.T) {
	ctx := context.Background()
	e, err := openT(Config{Store: memstore.New(), DataDir: t.TempDir(), Clock: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
	if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22)); err != nil {
		t.Fatal(err)
	}
	s := seedSpec(y23, 23)
	s.Adapters, s.FromAgent = nil, []string{FactNetworkAdapters}
	var ie *InputError
	if _, err := e.CreateHost(ctx, s); !errors.As(err, &ie) || ie.Attribute != FactNetworkAdapters ||
		!strings.Contains(err.Error(), `host "Y-23-2k8x64" declares no network_adapters and no node agent has reported its machine`) {
		t.Fatalf("no adapters and no agent: %v", err)
	}
	rep := hostfacts.Report{Version: hostfacts.ReportVersion, ProcessorVendor: "intel", ProcessorCores: 8, MemoryMB: 32768,
		ReportedAt: fixedNow, Adapters: []hostfacts.Adapter{{Name: "lo0", Addresses: []string{"fe80::1/64"}}}}
	if err := e.ReportHost(ctx, y23, rep); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateHost(ctx, s); !errors.As(err, &ie) || ie.Attribute != FactNetworkAdapters ||
		!strings.Contains(err.Error(), "reports no network interface with a usable address (it reports lo0 fe80::1/64)") {
		t.Fatalf("only a link-local interface: %v", err)
	}
	rep.Adapters = []hostfacts.Adapter{
		{Name: "eth0", MAC: "52:54:00:00:00:23", Up: true, Addresses: []string{"192.0.2.23/24", "fe80::23/64"}},
		{Name: "eth1", MAC: "52:54:00:01:00:23", Up: true, Addresses: []string{"2001:db8::23/64", "10.10.10.23/24"}},
		{Name: "tap0", Up: true, Addresses: []string{}},
	}
	if err := e.ReportHost(ctx, y23, rep); err != nil {
		t.Fatal(err)
	}
	h, err := e.CreateHost(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	want := []Adapter{{Name: "eth0", Network: "192.0.2.0/24", Address: "192.0.2.23"}, {Name: "eth1", Network: "10.10.10.0/24", Address: "10.10.10.23"}}
	if !slices.Equal(h.Adapters, want) {
		t.Fatalf("adapters from the report: %+v, want %+v", h.Adapters, want)
	}
	// A node now: its adapters are the cluster's networks, so it validates.
	if _, err := e.UpdateCluster(ctx, seedCluster("HVCLUSTER", y21, y22, y23)); err != nil {
		t.Fatalf("adding the node whose adapters its agent reported: %v", err)
	}
	// The cluster's network wins over the first IPv4 address.
	rep.Adapters[1].Addresses = []string{"172.16.0.23/16", "10.10.10.123/24"}
	if err := e.ReportHost(ctx, y23, rep); err != nil {
		t.Fatal(err)
	}
	h, _ = e.GetHost(ctx, y23)
	if want[1].Address = "10.10.10.123"; !slices.Equal(h.Adapters, want) {
		t.Fatalf("after the agent reported a new address: %+v, want %+v", h.Adapters, want)
	}
	// Declared again: held to the report, not replaced by it.
	s.FromAgent, s.Adapters = nil, seedSpec(y23, 23).Adapters
	if _, err := e.UpdateHost(ctx, s); err == nil ||
		!strings.Contains(err.Error(), `host "Y-23-2k8x64" declares network_adapters "Heartbeat" address 10.10.10.23 but its agent reports 10.10.10.123 (interface eth1) in network 10.10.10.0/24`) {
		t.Fatalf("declaring an address the agent does not report: %v, want a validation failure naming both", err)
	}
}
