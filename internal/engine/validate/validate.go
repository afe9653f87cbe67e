// Package validate is the cluster validation report of Windows Server 2008
// failover clustering's "Validate a Configuration" wizard, as a pure
// function: Run takes the cluster a user asks for and the hosts registered
// with the cluster manager, and returns one test per check in four
// categories (Inventory, Network, Storage, System Configuration).
//
// A failed test blocks forming the cluster; a warning is reported and does
// not. The package does no I/O, reads no clock and is deterministic: the same
// Input always yields an identical Report.
package validate

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// MaxNodes is the largest number of nodes a Windows Server 2008 failover
// cluster may have.
const MaxNodes = 16

// MaxNameLength is the longest NetBIOS name (the 16th byte is the NetBIOS
// suffix).
const MaxNameLength = 15

// Categories of the report, in the order they appear.
const (
	CategoryInventory           = "Inventory"
	CategoryNetwork             = "Network"
	CategoryStorage             = "Storage"
	CategorySystemConfiguration = "System Configuration"
)

// Attributes of kayo_cluster that a test can concern.
const (
	AttrName          = "name"
	AttrNodes         = "nodes"
	AttrStaticAddress = "static_address"
)

// Features every node needs, as Windows names them.
const (
	FeatureHyperV             = "Hyper-V"
	FeatureFailoverClustering = "Failover-Clustering"
)

// RequiredFeatures lists the features every node must have, in report order.
var RequiredFeatures = []string{FeatureHyperV, FeatureFailoverClustering}

// Adapter is one network adapter of a host: its name (e.g. "Public"), the
// network it is attached to, and its address on that network.
type Adapter struct {
	Name    string
	Network netip.Prefix
	Address netip.Addr
}

// Host is a registered physical server as the cluster manager knows it.
type Host struct {
	Name            string
	OSEdition       string // standard | enterprise | datacenter
	ProcessorVendor string // intel | amd
	ProcessorModel  string
	ProcessorCores  int
	MemoryMB        int64
	Address         netip.Addr
	Features        []string // e.g. "Hyper-V", "Failover-Clustering"
	Adapters        []Adapter
	// Reported is what the host's node agent reports of its machine; nil
	// when no agent reports (the embedded lab): tests then use the
	// declared facts above and say so (Source).
	Reported *Reported
	// FromAgent names the facts above the configuration left out (taken
	// from the agent's report, so not compared with it), by attribute:
	// processor_vendor, processor_model, processor_cores, memory_mb,
	// network_adapters.
	FromAgent []string
}

// Reported is a node agent's report of its machine.
type Reported struct {
	ProcessorVendor string // intel | amd (normalised from cpuinfo's vendor_id)
	ProcessorModel  string
	ProcessorCores  int
	CPUFlags        []string // /proc/cpuinfo flags
	MemoryMB        int64
	At              time.Time // when the agent reported
	// Hypervisor is what the host can run guests with; nil without QEMU.
	Hypervisor *HypervisorReport
	// Adapters are its network interfaces (loopback left out); none from
	// a report that lists no interface, which then checks no adapter.
	Adapters []ReportedAdapter
}

// ReportedAdapter is one network interface as the host's agent found it.
type ReportedAdapter struct {
	Name      string
	Addresses []netip.Prefix // in CIDR form: address and subnet
	Up        bool
}

// HypervisorReport is a host's QEMU as its agent found it.
type HypervisorReport struct {
	Name, Version, Accel string // qemu, 7.2.15, kvm | tcg
}

// Input is what validation looks at: the cluster the user asks for and every
// registered host.
type Input struct {
	ClusterName string
	// Hypervisor is the cluster's VM runtime: simulator or qemu.
	Hypervisor string
	// StaticAddress is the cluster's administrative address as the user wrote
	// it, a CIDR such as "192.0.2.50/24". It is parsed here; a bad one is a
	// failed test, not an error.
	StaticAddress string
	// Nodes are the host names asked to be nodes.
	Nodes []string
	// Hosts holds every registered host (nodes and others) by name. The map
	// key is the host's name; Host.Name is not consulted.
	Hosts map[string]Host
	// Probes are the node agents' probes of each other's addresses on the
	// cluster networks (fresh ones only); a node in Probing sent them. With
	// none, Network Communication is judged from the declared adapters.
	Probes  []Probe
	Probing map[string]bool
	// ProbedAt is when each probing node's round was made.
	ProbedAt map[string]time.Time
	// Clocks are the nodes' clock offsets against the cluster, measured
	// by their agents' probes (docs/ARCHITECTURE.md, "Clock offset").
	Clocks map[string]Clock
	// NotReporting and NotProbing name the nodes whose agent's host
	// report or probe round is unusable (unreadable, out of range, of an
	// old version, stopped), with why: never read as data, always named.
	NotReporting map[string]string
	NotProbing   map[string]string
	// Storage is what the agents' storage probes found (storage_probed.go);
	// nil without probing agents: Storage is then judged by design.
	Storage *StorageInput
	// OtherClusterAddresses holds the static addresses of other clusters,
	// cluster name -> address (a CIDR or a bare address). The static address
	// must not equal any of them. Leave out the cluster being validated.
	OtherClusterAddresses map[string]string
}

// Result is the outcome of one test.
type Result string

// The outcomes of a test.
const (
	Passed  Result = "passed"
	Warning Result = "warning"
	Failed  Result = "failed"
)

// Test is one line of the validation report.
type Test struct {
	Category  string // Inventory | Network | Storage | System Configuration
	Name      string // e.g. "Validate Operating System Edition"
	Result    Result
	Message   string // one sentence: names the host, the bad value and what is allowed
	Attribute string // the kayo_cluster attribute it concerns: "name", "nodes" or "static_address"
	// Source says what the test looked at: SourceDeclared (the facts in
	// the configuration) or SourceProbed (what node agents report and
	// measure).
	Source string
	// Agents are, for a probed test, the nodes whose agents' data it used
	// and when each was reported or measured, by node name.
	Agents []AgentData `json:",omitempty"`
	// Probes are, for Network Communication from probes, each probed
	// pair's result: reachability and round-trip time per pair and network.
	Probes []ProbeData `json:",omitempty"`
}

// ProbeData is one agent's probe of another node on a cluster network.
type ProbeData struct {
	From      string        `json:"from"`
	To        string        `json:"to"`
	Network   string        `json:"network"`
	Reachable bool          `json:"reachable"`
	RTT       time.Duration `json:"rtt_ns"`
}

// AgentData names one node agent's data a test used.
type AgentData struct {
	Node string    `json:"node"`
	At   time.Time `json:"at"`
}

// Sources of a test's data.
const (
	SourceDeclared = "declared"
	SourceProbed   = "probed"
)

func declared(t Test) Test { t.Source = SourceDeclared; return t }

func probed(t Test) Test { t.Source = SourceProbed; return t }

// Report is the whole validation report, tests in a fixed order.
type Report struct {
	Tests []Test
}

// Failed returns the failed tests, in report order.
func (r Report) Failed() []Test { return r.with(Failed) }

// Warnings returns the tests that passed with a warning, in report order.
func (r Report) Warnings() []Test { return r.with(Warning) }

// Passed reports whether no test failed (warnings do not block the cluster).
func (r Report) Passed() bool { return len(r.Failed()) == 0 }

func (r Report) with(res Result) []Test {
	var out []Test
	for _, t := range r.Tests {
		if t.Result == res {
			out = append(out, t)
		}
	}
	return out
}

// Err returns nil when no test failed, and otherwise an error whose text
// lists every failed test as `Category / Name: Message`.
func (r Report) Err() error {
	failed := r.Failed()
	if len(failed) == 0 {
		return nil
	}
	lines := make([]string, len(failed))
	for i, t := range failed {
		lines[i] = fmt.Sprintf("%s / %s: %s", t.Category, t.Name, t.Message)
	}
	return fmt.Errorf("cluster validation failed %s:\n%s",
		plural(len(failed), "test"), strings.Join(lines, "\n"))
}

// CheckName reports whether name is a valid NetBIOS cluster name: 1 to 15
// characters, each an ASCII letter, digit or hyphen, and not all digits.
// The error text names the value and what is allowed.
func CheckName(name string) error {
	const allowed = "a NetBIOS name has 1 to 15 characters, each a letter, digit or hyphen, and is not all digits"
	if name == "" {
		return fmt.Errorf("cluster name is empty; %s", allowed)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("cluster name %q contains %q; %s", name, string(r), allowed)
		}
	}
	if len(name) > MaxNameLength {
		return fmt.Errorf("cluster name %q has %d characters; %s", name, len(name), allowed)
	}
	if strings.Trim(name, "0123456789") == "" {
		return fmt.Errorf("cluster name %q is all digits; %s", name, allowed)
	}
	return nil
}

// node is a registered host asked to be a node, with its name.
type node struct {
	name string
	Host
}

// env is what every check sees: the input plus the derived node set.
type env struct {
	in Input
	// requested are the distinct node names in first-seen order.
	requested []string
	// nodes are the registered requested nodes, sorted by name.
	nodes []node
	// unregistered are requested names with no registered host, sorted.
	unregistered []string
	// networks are the cluster networks: masked prefixes on which every
	// node has an adapter, in the order of the first node's adapters.
	networks []clusterNetwork
}

type clusterNetwork struct {
	prefix netip.Prefix
	label  string // adapter name on the first node that has it
}

func (n clusterNetwork) String() string {
	if n.label == "" {
		return n.prefix.String()
	}
	return fmt.Sprintf("%s (%s)", n.prefix, n.label)
}

// Run validates the configuration and returns the full report: one test per
// check, passed ones included. Checks over hosts run over the requested nodes
// that are registered, even when some requested node is not.
func Run(in Input) Report {
	e := newEnv(in)
	var tests []Test
	tests = append(tests, inventoryTests(e)...)
	tests = append(tests, networkTests(e)...)
	tests = append(tests, storageTests(e)...)
	tests = append(tests, systemTests(e)...)
	return Report{Tests: tests}
}

func newEnv(in Input) *env {
	e := &env{in: in}
	seen := map[string]bool{}
	for _, n := range in.Nodes {
		k := strings.ToLower(n)
		if seen[k] {
			continue
		}
		seen[k] = true
		e.requested = append(e.requested, n)
	}
	for _, n := range e.requested {
		h, ok := in.Hosts[n]
		if !ok {
			e.unregistered = append(e.unregistered, n)
			continue
		}
		e.nodes = append(e.nodes, node{name: n, Host: h})
	}
	sort.Strings(e.unregistered)
	sort.Slice(e.nodes, func(i, j int) bool { return e.nodes[i].name < e.nodes[j].name })
	e.networks = clusterNetworks(e.nodes)
	return e
}

// clusterNetworks returns the networks on which every node has an adapter.
func clusterNetworks(nodes []node) []clusterNetwork {
	if len(nodes) == 0 {
		return nil
	}
	var out []clusterNetwork
	seen := map[netip.Prefix]bool{}
	for _, a := range nodes[0].Adapters {
		p := a.Network.Masked()
		if !a.Network.IsValid() || seen[p] {
			continue
		}
		seen[p] = true
		all := true
		for _, n := range nodes[1:] {
			if !hasNetwork(n.Host, p) {
				all = false
				break
			}
		}
		if all {
			out = append(out, clusterNetwork{prefix: p, label: a.Name})
		}
	}
	return out
}

func hasNetwork(h Host, p netip.Prefix) bool {
	for _, a := range h.Adapters {
		if a.Network.IsValid() && a.Network.Masked() == p {
			return true
		}
	}
	return false
}

// nodeNames returns the names of the registered nodes, sorted.
func (e *env) nodeNames() []string {
	out := make([]string, len(e.nodes))
	for i, n := range e.nodes {
		out[i] = n.name
	}
	return out
}

func norm(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// plural returns "1 adapter" or "2 adapters" ("2 addresses").
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	if strings.HasSuffix(word, "s") {
		return fmt.Sprintf("%d %ses", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// joinAnd joins items as "a", "a and b" or "a, b and c".
func joinAnd(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// quoteHosts renders names as `host "a"` / `hosts "a" and "b"`.
func quoteHosts(names []string) string {
	return oneOrMany(len(names), "host ", "hosts ") + quotedNames(names)
}

// problems joins independent problem clauses into one sentence.
func problems(clauses []string) string { return strings.Join(clauses, "; ") }

func test(category, name, attr string, res Result, msg string) Test {
	return Test{Category: category, Name: name, Result: res, Message: msg, Attribute: attr, Source: SourceDeclared}
}
