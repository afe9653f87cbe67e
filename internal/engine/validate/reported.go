package validate

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// TestReportedInventory compares each node's declared facts with what its
// node agent reports: declared hardware can be wrong, and the wizard
// inventories the real machines for that reason.
const TestReportedInventory = "Compare Declared and Reported Inventory"

// MemoryTolerance is how far, as a fraction of the declared memory, the
// reported memory may fall short: the kernel's MemTotal leaves out what
// firmware and the kernel reserve.
const MemoryTolerance = 0.06

// InventoryMismatches returns one clause per declared fact of h that its
// report contradicts, naming the fact, the declared and the reported
// value; nil when h has no report.
func InventoryMismatches(name string, h Host) []string {
	r := h.Reported
	if r == nil {
		return nil
	}
	var out []string
	differs := func(fact, declared, reported string) {
		if !slices.Contains(h.FromAgent, fact) {
			out = append(out, fmt.Sprintf("host %q declares %s %s but its agent reports %s", name, fact, declared, reported))
		}
	}
	if h.ProcessorVendor != "" && r.ProcessorVendor != "" && norm(h.ProcessorVendor) != norm(r.ProcessorVendor) {
		differs("processor_vendor", fmt.Sprintf("%q", h.ProcessorVendor), fmt.Sprintf("%q", r.ProcessorVendor))
	}
	if h.ProcessorModel != "" && r.ProcessorModel != "" && !modelMatches(h.ProcessorModel, r.ProcessorModel) {
		differs("processor_model", fmt.Sprintf("%q", h.ProcessorModel), fmt.Sprintf("%q", r.ProcessorModel))
	}
	if h.ProcessorCores > 0 && r.ProcessorCores > 0 && h.ProcessorCores != r.ProcessorCores {
		differs("processor_cores", fmt.Sprint(h.ProcessorCores), fmt.Sprint(r.ProcessorCores))
	}
	if h.MemoryMB > 0 && r.MemoryMB > 0 && !memoryMatches(h.MemoryMB, r.MemoryMB) {
		differs("memory_mb", fmt.Sprint(h.MemoryMB), fmt.Sprintf("%d (a declared value may exceed the reported one by at most %.0f%%)", r.MemoryMB, MemoryTolerance*100))
	}
	if len(r.Adapters) > 0 && !slices.Contains(h.FromAgent, "network_adapters") {
		for _, a := range h.Adapters {
			if declared, reported, ok := adapterMismatch(a, r.Adapters); !ok {
				differs("network_adapters", declared, reported)
			}
		}
	}
	return out
}

// UsableAddress says whether an interface's address can be a cluster
// adapter's: not loopback, link-local, multicast or unspecified.
func UsableAddress(a netip.Addr) bool { return a.IsGlobalUnicast() }

// adapterMismatch matches a declared adapter with the reported interfaces
// by subnet: ok when one has its address in its network; otherwise the
// declared and the reported value for the message.
func adapterMismatch(a Adapter, reported []ReportedAdapter) (declared, got string, ok bool) {
	if !a.Network.IsValid() || !a.Address.IsValid() {
		return "", "", true // an invalid declaration fails IP Configuration
	}
	var there, all []string
	for _, r := range reported {
		for _, p := range r.Addresses {
			if !UsableAddress(p.Addr()) {
				continue
			}
			all = append(all, fmt.Sprintf("%s %s", r.Name, p))
			if !a.Network.Contains(p.Addr()) {
				continue
			}
			if p.Addr() == a.Address.Unmap() || p.Addr() == a.Address {
				return "", "", true
			}
			there = append(there, fmt.Sprintf("%s (interface %s)", p.Addr(), r.Name))
		}
	}
	if len(there) > 0 {
		return fmt.Sprintf("%q address %s", a.Name, a.Address), strings.Join(there, ", ") + " in network " + a.Network.String(), false
	}
	if len(all) == 0 {
		all = []string{"none with a usable address"}
	}
	return fmt.Sprintf("%q in network %s (address %s)", a.Name, a.Network, a.Address),
		fmt.Sprintf("no interface in that network (it reports %s)", strings.Join(all, ", ")), false
}

func memoryMatches(declared, reported int64) bool {
	return reported <= declared && float64(declared-reported) <= MemoryTolerance*float64(declared)
}

// modelMatches: every word of the declared model appears in the reported
// one ("Xeon E5-2670" matches "Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz").
func modelMatches(declared, reported string) bool {
	words := func(s string) []string {
		s = strings.NewReplacer("(r)", " ", "(tm)", " ", "(R)", " ", "(TM)", " ").Replace(s)
		return strings.Fields(strings.ToLower(s))
	}
	have := map[string]bool{}
	for _, w := range words(reported) {
		have[w] = true
	}
	for _, w := range words(declared) {
		if !have[w] {
			return false
		}
	}
	return true
}

func reportedInventoryTest(e *env) Test {
	if len(e.nodes) == 0 {
		return test(inventory, TestReportedInventory, AttrNodes, Passed, noRegisteredNodeCheck)
	}
	var clauses, silent []string
	var agents []AgentData
	for _, n := range e.nodes {
		if n.Reported == nil {
			if _, bad := e.in.NotReporting[n.name]; !bad {
				silent = append(silent, n.name)
			}
			continue
		}
		agents = append(agents, AgentData{Node: n.name, At: n.Reported.At})
		clauses = append(clauses, InventoryMismatches(n.name, n.Host)...)
	}
	bad := e.notReporting()
	t := func(res Result, msg string) Test {
		x := probed(test(inventory, TestReportedInventory, AttrNodes, res, msg))
		x.Agents = agents
		return x
	}
	switch {
	case len(silent) == len(e.nodes):
		return declared(test(inventory, TestReportedInventory, AttrNodes, Passed,
			"computed from declared facts: no node agent reports its machine, so the inventory is the declared one"))
	case len(clauses) > 0:
		return t(Failed, problems(append(clauses, bad...))+"; correct the declared value (or leave it out: the reported one is used)")
	case len(silent) > 0 || len(bad) > 0:
		var msg []string
		if len(silent) > 0 {
			msg = append(msg, fmt.Sprintf("%s %s nothing (no node agent reporting)",
				quotedNames(silent), oneOrMany(len(silent), "reports", "report")))
		}
		msg = append(msg, bad...)
		return t(Warning, problems(msg)+": "+oneOrMany(len(silent)+len(bad), "its", "their")+" declared facts are unchecked")
	}
	return t(Passed, fmt.Sprintf("the declared facts of %s match what their agents report", plural(len(e.nodes), "node")))
}
