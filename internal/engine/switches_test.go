package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckSwitchSpec(t *testing.T) {
	for _, c := range []struct {
		name string
		s    SwitchSpec
		attr string // "" valid
		want string
	}{
		{"external", SwitchSpec{Cluster: "C", Name: "Public", Type: SwitchExternal, Adapter: "Public"}, "", ""},
		{"external per node", SwitchSpec{Cluster: "C", Name: "Public", Type: SwitchExternal, NodeAdapters: map[string]string{"A": "eth0"}}, "", ""},
		{"private", SwitchSpec{Cluster: "C", Name: "Lab", Type: SwitchPrivate}, "", ""},
		{"bad type", SwitchSpec{Cluster: "C", Name: "X", Type: "bridged"}, "type", `"external", "internal" or "private"`},
		{"no name", SwitchSpec{Cluster: "C", Name: " ", Type: SwitchPrivate}, "name", "1 to 100"},
		{"slash", SwitchSpec{Cluster: "C", Name: "a/b", Type: SwitchPrivate}, "name", "no /"},
		{"external without adapter", SwitchSpec{Cluster: "C", Name: "X", Type: SwitchExternal}, "adapter", "binds to a host network adapter"},
		{"internal with adapter", SwitchSpec{Cluster: "C", Name: "X", Type: SwitchInternal, Adapter: "eth0"}, "adapter", "a internal switch takes none"},
		{"private with node adapters", SwitchSpec{Cluster: "C", Name: "X", Type: SwitchPrivate, NodeAdapters: map[string]string{"A": "eth0"}}, "node_adapters", "takes none"},
		{"empty node adapter", SwitchSpec{Cluster: "C", Name: "X", Type: SwitchExternal, Adapter: "eth0", NodeAdapters: map[string]string{"A": ""}}, "node_adapters", `node "A": an empty adapter name`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckSwitchSpec(c.s)
			if c.attr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ie *InputError
			if !errors.As(err, &ie) || ie.Attribute != c.attr || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an InputError on %s saying %q", err, c.attr, c.want)
			}
		})
	}
}

func TestCheckSwitchBinding(t *testing.T) {
	nodes := []string{"A", "B"}
	adapters := map[string][]string{"A": {"Heartbeat", "Public"}, "B": {"Heartbeat", "eth2"}}
	ext := func(adapter string, per map[string]string) SwitchSpec {
		return SwitchSpec{Cluster: "C", Name: "Ext", Type: SwitchExternal, Adapter: adapter, NodeAdapters: per}
	}
	// B has no "Public": named with the node, the value and what B has.
	err := CheckSwitchBinding(ext("Public", nil), nodes, adapters, nil)
	if err == nil || !strings.Contains(err.Error(), `adapter: node "B" has no network adapter "Public"; its adapters (declared and reported): "Heartbeat", "eth2"`) {
		t.Fatalf("missing adapter on B: %v", err)
	}
	if err := CheckSwitchBinding(ext("Public", map[string]string{"B": "eth2"}), nodes, adapters, nil); err != nil {
		t.Fatalf("B bound to its own adapter: %v", err)
	}
	err = CheckSwitchBinding(ext("Public", map[string]string{"Z": "eth2"}), nodes, adapters, nil)
	if err == nil || !strings.Contains(err.Error(), `node_adapters: "Z" is not a node of cluster "C"; nodes: "A", "B"`) {
		t.Fatalf("a node outside the cluster: %v", err)
	}
	err = CheckSwitchBinding(ext("Heartbeat", nil), nodes, adapters, []SwitchSpec{{Cluster: "C", Name: "Other", Type: SwitchExternal, Adapter: "Heartbeat"}})
	if err == nil || !strings.Contains(err.Error(), `bound to external switch "Other" already`) {
		t.Fatalf("an adapter bound twice: %v", err)
	}
	// The switch itself among the others (an update) is no clash.
	if err := CheckSwitchBinding(ext("Heartbeat", nil), nodes, adapters, []SwitchSpec{ext("Heartbeat", nil)}); err != nil {
		t.Fatal(err)
	}
	if err := CheckSwitchBinding(SwitchSpec{Cluster: "C", Name: "P", Type: SwitchPrivate}, nodes, adapters, nil); err != nil {
		t.Fatal(err)
	}
}

func TestCheckVMSwitches(t *testing.T) {
	sws := []string{"Lab", "Public"}
	if err := CheckVMSwitches("C", []VMAdapter{{Switch: "Public"}, {Switch: "C/Lab"}}, nil, sws); err != nil {
		t.Fatalf("by name and by id: %v", err)
	}
	err := CheckVMSwitches("C", []VMAdapter{{Switch: "Public"}, {Switch: "Pubic"}}, nil, sws)
	var ie *InputError
	if !errors.As(err, &ie) || ie.Attribute != "network_adapters[1].switch" || ie.Value != "Pubic" ||
		!strings.Contains(err.Error(), `cluster "C" has no virtual switch "Pubic"; its switches: "Lab", "Public"`) {
		t.Fatalf("a missing switch: %v", err)
	}
	err = CheckVMSwitches("C", []VMAdapter{{Switch: "Public"}}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "none: declare a kayo_virtual_switch") {
		t.Fatalf("no switches at all: %v", err)
	}
	// An id of another cluster is not one of this cluster's switches.
	if err := CheckVMSwitches("C", []VMAdapter{{Switch: "D/Public"}}, nil, sws); err == nil {
		t.Fatal("another cluster's switch accepted")
	}
	// An adapter the VM had already stays, switch or not.
	if err := CheckVMSwitches("C", []VMAdapter{{Switch: "Legacy"}, {Switch: "Lab"}}, []VMAdapter{{Switch: "Legacy"}}, sws); err != nil {
		t.Fatal(err)
	}
}

func TestBridgeAndTapNamesFitLinux(t *testing.T) {
	for _, n := range []string{BridgeName("HVCLUSTER", strings.Repeat("x", 100)), TapName("HVCLUSTER", "Y-21-2k8x64", strings.Repeat("v", 64), 7)} {
		if len(n) > 15 {
			t.Errorf("%q: %d bytes, Linux allows 15", n, len(n))
		}
	}
	if BridgeName("C", "a") == BridgeName("C", "b") || TapName("C", "A", "v", 0) == TapName("C", "A", "v", 1) || TapName("C", "A", "v", 0) == TapName("C", "B", "v", 0) {
		t.Error("names collide")
	}
}

// A switch checked against the cluster's hosts; VMs must name one once
// the cluster has switches; a switch in use cannot go.
func TestSwitchLifecycle(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t)
	// Before any switch the simulator lab keeps free-text names.
	if _, err := e.CreateVM(ctx, vmSpec(vol, "OLD01", 256)); err != nil {
		t.Fatal(err)
	}
	_, err := e.CreateSwitch(ctx, SwitchSpec{Cluster: "HVCLUSTER", Name: "Ext", Type: SwitchExternal, Adapter: "Storage"})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `node "Y-21-2k8x64" has no network adapter "Storage"; its adapters (declared and reported): "Heartbeat", "Public"`) {
		t.Fatalf("an adapter no node has: %v", err)
	}
	if _, err := e.GetSwitch(ctx, "HVCLUSTER", "Ext"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused switch was recorded: %v", err)
	}
	if judged, err := e.PlanSwitch(ctx, SwitchSpec{Cluster: "HVCLUSTER", Name: "Ext", Type: SwitchExternal, Adapter: "Storage"}); !judged || err == nil {
		t.Fatalf("plan of the same: judged %v, %v", judged, err)
	}
	if judged, err := e.PlanSwitch(ctx, SwitchSpec{Cluster: "NEWCLUSTER", Name: "Ext", Type: SwitchExternal, Adapter: "Storage"}); judged || err != nil {
		t.Fatalf("a cluster not committed yet is apply's to judge: judged %v, %v", judged, err)
	}
	if _, err := e.CreateSwitch(ctx, SwitchSpec{Cluster: "HVCLUSTER", Name: "Public", Type: SwitchExternal, Adapter: "Public"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateSwitch(ctx, SwitchSpec{Cluster: "HVCLUSTER", Name: "Public", Type: SwitchExternal, Adapter: "Public"}); !errors.Is(err, ErrExists) {
		t.Fatalf("a second switch of one name: %v", err)
	}
	// Now every new adapter names a switch, at plan and at apply.
	bad := vmSpec(vol, "WEB01", 256)
	bad.Adapters = []VMAdapter{{Switch: "Pubilc"}}
	if _, err := e.PlanVM(ctx, bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `network_adapters[0].switch: cluster "HVCLUSTER" has no virtual switch "Pubilc"; its switches: "Public"`) {
		t.Fatalf("plan: %v", err)
	}
	if _, err := e.CreateVM(ctx, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("apply: %v", err)
	}
	if _, err := e.GetVM(ctx, "HVCLUSTER", "WEB01"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused VM was created: %v", err)
	}
	good := vmSpec(vol, "WEB01", 256)
	good.Adapters = []VMAdapter{{Switch: "HVCLUSTER/Public"}}
	if _, err := e.CreateVM(ctx, good); err != nil {
		t.Fatal(err)
	}
	// OLD01 keeps its adapter through an update that does not touch it.
	old, err := e.GetVM(ctx, "HVCLUSTER", "OLD01")
	if err != nil {
		t.Fatal(err)
	}
	old.PreferredOwners = []string{y22, y21}
	if _, err := e.UpdateVM(ctx, old.VMSpec); err != nil {
		t.Fatalf("an update keeping a pre-switch adapter: %v", err)
	}
	if err := e.DeleteSwitch(ctx, "HVCLUSTER", "Public"); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), `VMs "OLD01", "WEB01" have adapters on it`) {
		t.Fatalf("deleting a switch in use: %v", err)
	}
	for _, n := range []string{"OLD01", "WEB01"} {
		if err := e.DeleteVM(ctx, "HVCLUSTER", n); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.DeleteSwitch(ctx, "HVCLUSTER", "Public"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.GetSwitch(ctx, "HVCLUSTER", "Public"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted switch still there: %v", err)
	}
}

func TestAssignAddress(t *testing.T) {
	res := map[netip.Addr]bool{netip.MustParseAddr("10.77.0.2"): true}
	got, err := AssignAddress("10.77.0.0/24", res)
	if err != nil || got != "10.77.0.3/24" {
		t.Fatalf("got %q, %v; want 10.77.0.3/24 (.0 network, .1 router, .2 reserved)", got, err)
	}
	// A /29 has .2 to .6 for guests; the broadcast .7 is never given.
	res = map[netip.Addr]bool{}
	for i := 2; i <= 6; i++ {
		res[netip.MustParseAddr(fmt.Sprintf("10.77.0.%d", i))] = true
	}
	if got, err := AssignAddress("10.77.0.0/29", res); !errors.Is(err, ErrInUse) {
		t.Fatalf("a full subnet gave %q, %v", got, err)
	}
	if err := CheckSwitchSpec(SwitchSpec{Cluster: "C", Name: "P", Type: SwitchPrivate, Subnet: "10.77.0.1/24"}); err == nil ||
		!strings.Contains(err.Error(), `subnet: "10.77.0.1/24" is not allowed`) {
		t.Fatalf("a host address as subnet: %v", err)
	}
}

// Guests on a switch with a subnet get distinct addresses, kept by an
// update and a move; another VM does not get a taken one.
func TestSwitchSubnetAddresses(t *testing.T) {
	ctx := context.Background()
	e, vol := vmEnv(t)
	if _, err := e.CreateSwitch(ctx, SwitchSpec{Cluster: "HVCLUSTER", Name: "Lab", Type: SwitchPrivate, Subnet: "192.0.2.0/24"}); err != nil {
		t.Fatal(err)
	}
	addrs := map[string]string{}
	for _, n := range []string{"A01", "B01"} {
		s := vmSpec(vol, n, 256)
		s.Adapters = []VMAdapter{{Switch: "Lab"}}
		vm, err := e.CreateVM(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(vm.AdapterAddresses) != 1 {
			t.Fatalf("%s: addresses %v", n, vm.AdapterAddresses)
		}
		addrs[n] = vm.AdapterAddresses[0]
	}
	// .1 router, .21/.22 the hosts, .50 the cluster's static address.
	if addrs["A01"] != "192.0.2.2/24" || addrs["B01"] != "192.0.2.3/24" {
		t.Fatalf("addresses %v", addrs)
	}
	vm, err := e.GetVM(ctx, "HVCLUSTER", "A01")
	if err != nil {
		t.Fatal(err)
	}
	spec := vm.VMSpec
	spec.OwnerNode = y22
	if vm.Node == y22 {
		spec.OwnerNode = y21
	}
	moved, err := e.UpdateVM(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if moved.Node != spec.OwnerNode || fmt.Sprint(moved.AdapterAddresses) != "[192.0.2.2/24]" {
		t.Fatalf("after the move: on %s with %v", moved.Node, moved.AdapterAddresses)
	}
	if got := vm.hvVM().Adapters[0].Address; got != "192.0.2.2/24" {
		t.Fatalf("the driver is handed %q", got)
	}
}
