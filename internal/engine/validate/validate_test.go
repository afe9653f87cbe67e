package validate

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

const (
	y21 = "Y-21-2k8x64"
	y22 = "Y-22-2k8x64"
)

func seedHost(name string, octet byte) Host {
	return Host{
		Name:            name,
		OSEdition:       "enterprise",
		ProcessorVendor: "intel",
		ProcessorModel:  "Xeon E5440",
		ProcessorCores:  8,
		MemoryMB:        32768,
		Address:         netip.AddrFrom4([4]byte{192, 0, 2, octet}),
		Features:        []string{"Hyper-V", "Failover-Clustering"},
		Adapters: []Adapter{
			{Name: "Public", Network: netip.MustParsePrefix("192.0.2.0/24"), Address: netip.AddrFrom4([4]byte{192, 0, 2, octet})},
			{Name: "Heartbeat", Network: netip.MustParsePrefix("10.10.10.0/24"), Address: netip.AddrFrom4([4]byte{10, 10, 10, octet})},
		},
	}
}

// seed is the configuration of the seed guide: two identical hosts.
func seed() Input {
	return Input{
		ClusterName:   "HVCLUSTER",
		StaticAddress: "192.0.2.50/24",
		Nodes:         []string{y21, y22},
		Hosts: map[string]Host{
			y21: seedHost(y21, 21),
			y22: seedHost(y22, 22),
		},
	}
}

// edit changes one registered host of the input in place.
func edit(in *Input, name string, f func(*Host)) {
	h := in.Hosts[name]
	h.Adapters = append([]Adapter(nil), h.Adapters...)
	h.Features = append([]string(nil), h.Features...)
	f(&h)
	in.Hosts[name] = h
}

func find(t *testing.T, r Report, name string) Test {
	t.Helper()
	var found []Test
	for _, x := range r.Tests {
		if x.Name == name {
			found = append(found, x)
		}
	}
	if len(found) != 1 {
		t.Fatalf("report has %d tests named %q, want 1; report:\n%s", len(found), name, dump(r))
	}
	return found[0]
}

func dump(r Report) string {
	var b strings.Builder
	for _, x := range r.Tests {
		b.WriteString("  " + x.Category + " / " + x.Name + " [" + string(x.Result) + "] (" + x.Attribute + "): " + x.Message + "\n")
	}
	return b.String()
}

func TestSeedAllPassed(t *testing.T) {
	r := Run(seed())
	if !r.Passed() || len(r.Failed()) != 0 || len(r.Warnings()) != 0 || r.Err() != nil {
		t.Fatalf("seed must pass with no warnings:\n%s", dump(r))
	}
	cats := map[string]int{}
	names := map[string]bool{}
	for _, x := range r.Tests {
		cats[x.Category]++
		if x.Result != Passed {
			t.Errorf("%s: %s", x.Name, x.Result)
		}
		if x.Message == "" || strings.Contains(x.Message, "\n") {
			t.Errorf("%s: message %q must be one non-empty line", x.Name, x.Message)
		}
		switch x.Attribute {
		case AttrName, AttrNodes, AttrStaticAddress:
		default:
			t.Errorf("%s: attribute %q", x.Name, x.Attribute)
		}
		if names[x.Name] {
			t.Errorf("duplicate test name %q", x.Name)
		}
		names[x.Name] = true
	}
	for _, c := range []string{CategoryInventory, CategoryNetwork, CategoryStorage, CategorySystemConfiguration} {
		if cats[c] == 0 {
			t.Errorf("no test in category %q", c)
		}
	}
	// Categories appear in order, each once as a block.
	order := []string{}
	for _, x := range r.Tests {
		if len(order) == 0 || order[len(order)-1] != x.Category {
			order = append(order, x.Category)
		}
	}
	want := []string{CategoryInventory, CategoryNetwork, CategoryStorage, CategorySystemConfiguration}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("category order %v, want %v", order, want)
	}
	checks := map[string][]string{
		TestOSEdition:            {"2 nodes run Windows Server 2008 Enterprise or Datacenter"},
		TestSharedStorage:        {"embedded SAN", "2 nodes"},
		TestClusterIPAddress:     {"192.0.2.50/24", "192.0.2.0/24 (Public)"},
		TestClusterNetworkConfig: {"192.0.2.0/24 (Public)", "10.10.10.0/24 (Heartbeat)"},
		TestMemory:               {"32768 MB"},
		TestProcessorVendor:      {"intel", "live-migrate"},
	}
	for name, subs := range checks {
		m := find(t, r, name).Message
		for _, s := range subs {
			if !strings.Contains(m, s) {
				t.Errorf("%s: message %q lacks %q", name, m, s)
			}
		}
	}
}

func TestRunChecks(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Input)
		test   string
		result Result
		attr   string
		want   []string // substrings of the message
	}{
		{"bad cluster name", func(in *Input) { in.ClusterName = "HV_CLUSTER" },
			TestClusterName, Failed, AttrName, []string{`"HV_CLUSTER"`, `"_"`, "1 to 15"}},
		{"cluster name too long", func(in *Input) { in.ClusterName = "ABCDEFGHIJKLMNOP" },
			TestClusterName, Failed, AttrName, []string{`"ABCDEFGHIJKLMNOP"`, "16 characters"}},
		{"no nodes", func(in *Input) { in.Nodes = nil },
			TestNodeCount, Failed, AttrNodes, []string{"no node", "1 to 16"}},
		{"17 nodes", func(in *Input) {
			in.Nodes = nil
			for i := 0; i < 17; i++ {
				n := "N" + string(rune('A'+i))
				in.Nodes = append(in.Nodes, n)
				in.Hosts[n] = seedHost(n, byte(100+i))
			}
		}, TestNodeCount, Failed, AttrNodes, []string{"17 nodes", "1 to 16"}},
		{"duplicate node", func(in *Input) { in.Nodes = []string{y21, y22, y21} },
			TestDistinctNodes, Failed, AttrNodes, []string{`"` + y21 + `" is listed 2 times`}},
		{"duplicate node by case", func(in *Input) { in.Nodes = []string{y21, y22, strings.ToLower(y21)} },
			TestDistinctNodes, Failed, AttrNodes, []string{`"` + y21 + `"`, `"y-21-2k8x64"`}},
		{"unregistered node", func(in *Input) { in.Nodes = append(in.Nodes, "Y-23-2k8x64") },
			TestListNodes, Failed, AttrNodes, []string{`"Y-23-2k8x64" is not a registered host`}},
		{"unregistered node wrong case", func(in *Input) { in.Nodes = []string{y21, "y-22-2k8x64"} },
			TestListNodes, Failed, AttrNodes, []string{`"y-22-2k8x64"`, `did you mean "` + y22 + `"`}},
		{"standard edition", func(in *Input) { edit(in, y22, func(h *Host) { h.OSEdition = "standard" }) },
			TestOSEdition, Failed, AttrNodes, []string{`host "` + y22 + `"`, `"standard"`, "enterprise or datacenter"}},
		{"datacenter edition passes", func(in *Input) { edit(in, y22, func(h *Host) { h.OSEdition = "Datacenter" }) },
			TestOSEdition, Passed, AttrNodes, []string{"2 nodes run"}},
		{"missing failover clustering", func(in *Input) { edit(in, y21, func(h *Host) { h.Features = []string{"Hyper-V"} }) },
			TestFeatures, Failed, AttrNodes, []string{`host "` + y21 + `" lacks feature Failover-Clustering`}},
		{"missing hyper-v", func(in *Input) { edit(in, y22, func(h *Host) { h.Features = []string{"Failover-Clustering"} }) },
			TestFeatures, Failed, AttrNodes, []string{`host "` + y22 + `" lacks feature Hyper-V`}},
		{"missing both features", func(in *Input) { edit(in, y22, func(h *Host) { h.Features = nil }) },
			TestFeatures, Failed, AttrNodes, []string{`host "` + y22 + `" lacks features Hyper-V and Failover-Clustering`}},
		{"one adapter", func(in *Input) { edit(in, y22, func(h *Host) { h.Adapters = h.Adapters[:1] }) },
			TestAdapterCount, Failed, AttrNodes, []string{`host "Y-22-2k8x64" has 1 network adapter; failover clustering needs at least 2`}},
		{"network missing on a node", func(in *Input) {
			edit(in, y22, func(h *Host) {
				h.Adapters[1] = Adapter{Name: "Heartbeat", Network: netip.MustParsePrefix("10.20.20.0/24"), Address: netip.MustParseAddr("10.20.20.22")}
			})
		}, TestClusterNetworkConfig, Failed, AttrNodes, []string{
			`host "` + y22 + `" has no adapter in network 10.10.10.0/24 (Heartbeat)`,
			`host "` + y21 + `" has no adapter in network 10.20.20.0/24`}},
		{"adapter outside its network", func(in *Input) {
			edit(in, y21, func(h *Host) { h.Adapters[1].Address = netip.MustParseAddr("10.10.11.21") })
		}, TestIPConfiguration, Failed, AttrNodes, []string{`adapter "Heartbeat" on host "` + y21 + `"`, "10.10.11.21", "outside its network 10.10.10.0/24"}},
		{"adapter on broadcast address", func(in *Input) {
			edit(in, y21, func(h *Host) { h.Adapters[1].Address = netip.MustParseAddr("10.10.10.255") })
		}, TestIPConfiguration, Failed, AttrNodes, []string{"10.10.10.255", "broadcast address"}},
		{"duplicate adapter address across nodes", func(in *Input) {
			edit(in, y22, func(h *Host) { h.Adapters[1].Address = netip.MustParseAddr("10.10.10.21") })
		}, TestUniqueAddresses, Failed, AttrNodes, []string{"10.10.10.21", `host "` + y21 + `" (adapter "Heartbeat")`, `host "` + y22 + `" (adapter "Heartbeat")`}},
		{"adapter address equals another host's address", func(in *Input) {
			in.Hosts["Y-30"] = Host{Name: "Y-30", Address: netip.MustParseAddr("10.10.10.22")}
		}, TestUniqueAddresses, Failed, AttrNodes, []string{"10.10.10.22", `host "Y-30" (host address)`, `host "` + y22 + `" (adapter "Heartbeat")`}},
		{"static address not CIDR", func(in *Input) { in.StaticAddress = "192.0.2.50" },
			TestClusterIPAddress, Failed, AttrStaticAddress, []string{`"192.0.2.50"`, "no prefix length", `"192.0.2.50/24"`}},
		{"static address garbage", func(in *Input) { in.StaticAddress = "192.0.2.500/24" },
			TestClusterIPAddress, Failed, AttrStaticAddress, []string{`"192.0.2.500/24"`, "not a valid CIDR", "192.0.2.0/24 (Public)"}},
		{"static address empty", func(in *Input) { in.StaticAddress = "" },
			TestClusterIPAddress, Failed, AttrStaticAddress, []string{"static_address is empty"}},
		{"static address outside cluster networks", func(in *Input) { in.StaticAddress = "172.16.0.5/16" },
			TestClusterIPAddress, Failed, AttrStaticAddress, []string{`"172.16.0.5/16"`, "outside every cluster network", "192.0.2.0/24 (Public) or 10.10.10.0/24 (Heartbeat)"}},
		{"static address in a network only one node has", func(in *Input) {
			edit(in, y21, func(h *Host) {
				h.Adapters = append(h.Adapters, Adapter{Name: "iSCSI", Network: netip.MustParsePrefix("172.16.0.0/16"), Address: netip.MustParseAddr("172.16.0.21")})
			})
			in.StaticAddress = "172.16.0.50/16"
		}, TestClusterIPAddress, Failed, AttrStaticAddress, []string{`"172.16.0.50/16"`, "outside every cluster network"}},
		{"static address used by a node", func(in *Input) { in.StaticAddress = "192.0.2.22/24" },
			TestClusterIPAddress, Failed, AttrStaticAddress, []string{`"192.0.2.22/24"`, "already used by", `host "` + y22 + `" (host address, adapter "Public")`}},
		{"static address used by a non-node host", func(in *Input) {
			in.Hosts["Y-30"] = Host{Name: "Y-30", Address: netip.MustParseAddr("192.0.2.50")}
		}, TestClusterIPAddress, Failed, AttrStaticAddress, []string{`"192.0.2.50/24"`, `host "Y-30" (host address)`}},
		{"static address used by another cluster", func(in *Input) {
			in.OtherClusterAddresses = map[string]string{"OTHER": "192.0.2.50/24"}
		}, TestClusterIPAddress, Failed, AttrStaticAddress, []string{`cluster "OTHER"`}},
		{"static address is network address", func(in *Input) { in.StaticAddress = "192.0.2.0/24" },
			TestClusterIPAddress, Failed, AttrStaticAddress, []string{`"192.0.2.0/24"`, "network address of cluster network 192.0.2.0/24"}},
		{"static address is broadcast address", func(in *Input) { in.StaticAddress = "10.10.10.255/24" },
			TestClusterIPAddress, Failed, AttrStaticAddress, []string{`"10.10.10.255/24"`, "broadcast address"}},
		{"static address wrong prefix length", func(in *Input) { in.StaticAddress = "192.0.2.50/16" },
			TestClusterIPAddress, Failed, AttrStaticAddress, []string{"/16", "/24", `"192.0.2.50/24"`}},
		{"static address in heartbeat network passes", func(in *Input) { in.StaticAddress = "10.10.10.50/24" },
			TestClusterIPAddress, Passed, AttrStaticAddress, []string{"10.10.10.0/24 (Heartbeat)"}},
		{"vendor differs", func(in *Input) { edit(in, y22, func(h *Host) { h.ProcessorVendor = "amd" }) },
			TestProcessorVendor, Warning, AttrNodes, []string{`"intel"`, `"amd"`, `host "` + y22 + `"`,
				`live migration between "` + y21 + `" and "` + y22 + `" falls back to quick migration`}},
		{"model differs", func(in *Input) { edit(in, y22, func(h *Host) { h.ProcessorModel = "Xeon X5460" }) },
			TestProcessorModel, Warning, AttrNodes, []string{`host "` + y21 + `" has "Xeon E5440"`, `host "` + y22 + `" has "Xeon X5460"`}},
		{"cores differ", func(in *Input) { edit(in, y22, func(h *Host) { h.ProcessorCores = 4 }) },
			TestProcessorCores, Warning, AttrNodes, []string{`host "` + y21 + `" has 8 cores`, `host "` + y22 + `" has 4 cores`}},
		{"memory differs", func(in *Input) { edit(in, y22, func(h *Host) { h.MemoryMB = 16384 }) },
			TestMemory, Warning, AttrNodes, []string{"memory", `host "` + y21 + `" has 32768 MB`, `host "` + y22 + `" has 16384 MB`}},
		{"adapter without address", func(in *Input) {
			edit(in, y21, func(h *Host) { h.Adapters[1].Address = netip.Addr{} })
		}, TestIPConfiguration, Failed, AttrNodes, []string{`adapter "Heartbeat" on host "` + y21 + `" has no valid address`}},
		{"adapter without network", func(in *Input) {
			edit(in, y22, func(h *Host) { h.Adapters[0].Network = netip.Prefix{} })
		}, TestIPConfiguration, Failed, AttrNodes, []string{`adapter "Public" on host "` + y22 + `" has no valid network`}},
		{"nodes share no network", func(in *Input) {
			edit(in, y22, func(h *Host) {
				h.Adapters = []Adapter{
					{Name: "A", Network: netip.MustParsePrefix("172.16.1.0/24"), Address: netip.MustParseAddr("172.16.1.22")},
					{Name: "B", Network: netip.MustParsePrefix("172.16.2.0/24"), Address: netip.MustParseAddr("172.16.2.22")},
				}
			})
		}, TestNetworkCommunication, Failed, AttrNodes, []string{"no network has an adapter on every node", `"` + y21 + `"`, `"` + y22 + `"`}},
		{"single network path", func(in *Input) {
			for _, n := range []string{y21, y22} {
				edit(in, n, func(h *Host) { h.Adapters[1].Network = netip.MustParsePrefix("192.0.2.0/24") })
			}
			edit(in, y21, func(h *Host) { h.Adapters[1].Address = netip.MustParseAddr("192.0.2.121") })
			edit(in, y22, func(h *Host) { h.Adapters[1].Address = netip.MustParseAddr("192.0.2.122") })
		}, TestNetworkCommunication, Warning, AttrNodes, []string{"only one network", "192.0.2.0/24"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := seed()
			c.mutate(&in)
			r := Run(in)
			got := find(t, r, c.test)
			if got.Result != c.result {
				t.Fatalf("%s: result %s, want %s; message %q\n%s", c.test, got.Result, c.result, got.Message, dump(r))
			}
			if got.Attribute != c.attr {
				t.Errorf("%s: attribute %q, want %q", c.test, got.Attribute, c.attr)
			}
			for _, w := range c.want {
				if !strings.Contains(got.Message, w) {
					t.Errorf("%s: message %q lacks %q", c.test, got.Message, w)
				}
			}
			if strings.Contains(got.Message, "\n") {
				t.Errorf("message spans lines: %q", got.Message)
			}
			// A warning never blocks; a failure always does.
			if c.result == Warning && !r.Passed() {
				t.Errorf("warning case must still pass:\n%s", dump(r))
			}
			if c.result == Failed {
				if r.Passed() || r.Err() == nil || !strings.Contains(r.Err().Error(), c.test) {
					t.Errorf("failure case must block: Passed=%v Err=%v", r.Passed(), r.Err())
				}
			}
			if c.result == Passed && !r.Passed() {
				t.Errorf("passing variant must pass:\n%s", dump(r))
			}
		})
	}
}

// Warnings alone never fail the report, and each names the differing value.
func TestWarningsOnlyDifferentHardware(t *testing.T) {
	in := seed()
	edit(&in, y22, func(h *Host) {
		h.ProcessorVendor = "amd"
		h.ProcessorModel = "Opteron 2356"
		h.ProcessorCores = 4
		h.MemoryMB = 16384
	})
	r := Run(in)
	if !r.Passed() {
		t.Fatalf("hardware differences must not fail:\n%s", dump(r))
	}
	var names []string
	for _, w := range r.Warnings() {
		names = append(names, w.Name)
	}
	want := []string{TestMemory, TestProcessorModel, TestProcessorCores, TestProcessorVendor}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("warnings %v, want %v", names, want)
	}
}

// With one node unregistered, the other tests still run over the registered
// nodes and name them.
func TestUnregisteredNodeStillChecksOthers(t *testing.T) {
	in := seed()
	in.Nodes = []string{y21, "GHOST", y22}
	edit(&in, y22, func(h *Host) { h.Adapters = h.Adapters[:1]; h.OSEdition = "standard" })
	r := Run(in)
	if got := find(t, r, TestListNodes); got.Result != Failed || !strings.Contains(got.Message, `"GHOST"`) {
		t.Errorf("list nodes: %+v", got)
	}
	if got := find(t, r, TestAdapterCount); got.Result != Failed ||
		!strings.Contains(got.Message, `host "Y-22-2k8x64" has 1 network adapter; failover clustering needs at least 2`) {
		t.Errorf("adapter count: %+v", got)
	}
	if got := find(t, r, TestOSEdition); got.Result != Failed || !strings.Contains(got.Message, y22) {
		t.Errorf("os edition: %+v", got)
	}
	if got := find(t, r, TestNodeCount); got.Result != Passed || !strings.Contains(got.Message, "3 nodes") {
		t.Errorf("node count: %+v", got)
	}
	if got := find(t, r, TestFeatures); got.Result != Passed {
		t.Errorf("features: %+v", got)
	}
	if got := find(t, r, TestSharedStorage); !strings.Contains(got.Message, "2 nodes") {
		t.Errorf("storage: %+v", got)
	}
	for _, x := range r.Tests {
		if strings.Contains(x.Message, "GHOST") && x.Name != TestListNodes {
			t.Errorf("%s mentions the unregistered node: %q", x.Name, x.Message)
		}
	}
}

// A cluster of nothing registered still yields a full, failed report.
func TestNoRegisteredNodes(t *testing.T) {
	r := Run(Input{ClusterName: "C1", StaticAddress: "192.0.2.50/24", Nodes: []string{"A"}})
	if r.Passed() {
		t.Fatal("must fail")
	}
	if got := find(t, r, TestClusterIPAddress); got.Result != Failed || !strings.Contains(got.Message, "share no network") {
		t.Errorf("cluster ip: %+v", got)
	}
	if len(r.Tests) != len(Run(seed()).Tests) {
		t.Errorf("report has %d tests, seed report %d", len(r.Tests), len(Run(seed()).Tests))
	}
}

func TestSingleNodeCluster(t *testing.T) {
	in := seed()
	in.Nodes = []string{y21}
	r := Run(in)
	if !r.Passed() || len(r.Warnings()) != 0 {
		t.Fatalf("single well-configured node must pass cleanly:\n%s", dump(r))
	}
}

func TestThreeVendorsAndGroups(t *testing.T) {
	in := seed()
	in.Hosts["Y-23"] = seedHost("Y-23", 23)
	in.Nodes = append(in.Nodes, "Y-23")
	edit(&in, "Y-23", func(h *Host) { h.ProcessorVendor = "amd" })
	got := find(t, Run(in), TestProcessorVendor)
	want := `live migration between any of ("` + y21 + `", "` + y22 + `") and any of "Y-23" falls back to quick migration`
	if got.Result != Warning || !strings.Contains(got.Message, want) {
		t.Errorf("got %+v, want message containing %q", got, want)
	}
	edit(&in, y22, func(h *Host) { h.ProcessorVendor = "via" })
	got = find(t, Run(in), TestProcessorVendor)
	if got.Result != Warning || !strings.Contains(got.Message, "any two nodes of different vendors falls back to quick migration") {
		t.Errorf("got %+v", got)
	}
}

func TestDeterministic(t *testing.T) {
	build := func(order []string) Input {
		in := seed()
		in.Nodes = order
		in.Hosts = map[string]Host{}
		for i, n := range []string{"N-A", "N-B", "N-C", "N-D", "N-E"} {
			h := seedHost(n, byte(30+i))
			h.MemoryMB = int64(1024 * (i%2 + 1))
			h.ProcessorVendor = []string{"intel", "amd"}[i%2]
			h.Adapters = h.Adapters[:i%2+1]
			in.Hosts[n] = h
		}
		in.Hosts["X"] = Host{Address: netip.MustParseAddr("192.0.2.31")}
		in.OtherClusterAddresses = map[string]string{"B": "192.0.2.50/24", "A": "192.0.2.50"}
		return in
	}
	first := Run(build([]string{"N-A", "N-B", "N-C", "N-D", "GHOST"}))
	for i := 0; i < 50; i++ {
		got := Run(build([]string{"N-A", "N-B", "N-C", "N-D", "GHOST"}))
		if !reflect.DeepEqual(first, got) {
			t.Fatalf("run %d differs:\n%s\nvs\n%s", i, dump(first), dump(got))
		}
	}
	// A set of nodes in another order gives the same report.
	if got := Run(build([]string{"GHOST", "N-D", "N-C", "N-B", "N-A"})); !reflect.DeepEqual(first, got) {
		t.Fatalf("node order changes report:\n%s\nvs\n%s", dump(first), dump(got))
	}
	if !strings.Contains(find(t, first, TestClusterIPAddress).Message, `cluster "A" (its static_address) and cluster "B"`) {
		t.Errorf("other clusters not listed in order: %q", find(t, first, TestClusterIPAddress).Message)
	}
}

func TestCheckName(t *testing.T) {
	cases := []struct {
		name string
		ok   bool
		want string
	}{
		{"HVCLUSTER", true, ""},
		{"A", true, ""},
		{"ABCDEFGHIJKLMNO", true, ""},     // 15
		{"ABCDEFGHIJKLMNOP", false, "16"}, // 16
		{"12345", false, "all digits"},
		{"123-45", true, ""},
		{"HV-CLUSTER", true, ""},
		{"-", true, ""},
		{"", false, "empty"},
		{"HV_CLUSTER", false, `"_"`},
		{"HV CLUSTER", false, `" "`},
		{"HV.CLUSTER", false, `"."`},
		{"CLÜSTER", false, `"Ü"`},
		{"cluster1", true, ""},
	}
	for _, c := range cases {
		err := CheckName(c.name)
		if (err == nil) != c.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", c.name, err, c.ok)
			continue
		}
		if err != nil {
			msg := err.Error()
			if !strings.Contains(msg, c.want) || !strings.Contains(msg, "1 to 15") {
				t.Errorf("CheckName(%q) = %q, want it to contain %q and the rule", c.name, msg, c.want)
			}
			if c.name != "" && !strings.Contains(msg, `"`+c.name+`"`) {
				t.Errorf("CheckName(%q) = %q does not name the value", c.name, msg)
			}
		}
	}
}

func TestVendorMismatch(t *testing.T) {
	a, b := seedHost("a", 1), seedHost("b", 2)
	if VendorMismatch(a, b) {
		t.Error("same vendor reported as mismatch")
	}
	b.ProcessorVendor = "Intel"
	if VendorMismatch(a, b) {
		t.Error("vendor compare must ignore case")
	}
	b.ProcessorVendor = "amd"
	if !VendorMismatch(a, b) || !VendorMismatch(b, a) {
		t.Error("intel vs amd must mismatch")
	}
}

func TestReportAccessors(t *testing.T) {
	r := Report{Tests: []Test{
		{Name: "a", Result: Passed}, {Name: "b", Result: Warning},
		{Name: "c", Result: Failed}, {Name: "d", Result: Warning},
	}}
	if r.Passed() {
		t.Error("Passed with a failure")
	}
	if f := r.Failed(); len(f) != 1 || f[0].Name != "c" {
		t.Errorf("Failed = %v", f)
	}
	if w := r.Warnings(); len(w) != 2 || w[0].Name != "b" || w[1].Name != "d" {
		t.Errorf("Warnings = %v", w)
	}
	if !(Report{}).Passed() {
		t.Error("empty report must pass")
	}
}
