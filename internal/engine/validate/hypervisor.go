package validate

import (
	"fmt"
	"sort"
	"strings"
)

// TestHypervisor is the System Configuration test of what the nodes can
// run guests with, from their agents' reports.
const TestHypervisor = "Validate Hypervisor Capability"

// The cluster runtimes (kayo_cluster.hypervisor).
const (
	HypervisorSimulator = "simulator"
	HypervisorQEMU      = "qemu"
)

// hypervisorTest: a qemu cluster needs QEMU on every node (a node without
// cannot run a VM: failed); nodes that differ in acceleration (KVM or
// TCG) or QEMU version can fail a live migration between them (warning).
// A simulator cluster runs no guest and needs none.
func hypervisorTest(e *env) Test {
	if len(e.nodes) == 0 {
		return test(system, TestHypervisor, AttrNodes, Passed, noRegisteredNodeCheck)
	}
	if e.in.Hypervisor != HypervisorQEMU { // "" is the default, the simulator
		return test(system, TestHypervisor, AttrNodes, Passed,
			fmt.Sprintf("the cluster's hypervisor is %q, which runs no guest on the nodes, so their QEMU does not matter", HypervisorSimulator))
	}
	var none, silent []string
	var agents []AgentData
	accel, version := map[string][]string{}, map[string][]string{}
	for _, n := range e.nodes {
		switch {
		case n.Reported == nil:
			if _, bad := e.in.NotReporting[n.name]; !bad {
				silent = append(silent, n.name)
			}
			continue
		case n.Reported.Hypervisor == nil:
			none = append(none, n.name)
		default:
			hv := n.Reported.Hypervisor
			accel[hv.Accel] = append(accel[hv.Accel], n.name)
			version[hv.Version] = append(version[hv.Version], n.name)
		}
		agents = append(agents, AgentData{Node: n.name, At: n.Reported.At})
	}
	bad := e.notReporting()
	if len(agents) == 0 && len(bad) == 0 {
		return declared(test(system, TestHypervisor, AttrNodes, Passed,
			"computed from declared facts: no node agent reports its hypervisor, so QEMU on the nodes is unchecked until one does"))
	}
	t := func(res Result, msg string) Test {
		x := probed(test(system, TestHypervisor, AttrNodes, res, msg))
		x.Agents = agents
		return x
	}
	var warns []string
	if len(accel) > 1 {
		warns = append(warns, "acceleration differs: "+groups(accel)+"; a live migration between KVM and TCG nodes fails")
	}
	if len(version) > 1 {
		warns = append(warns, "QEMU version differs: "+groups(version)+"; a live migration to an older QEMU can fail")
	}
	if len(silent) > 0 {
		warns = append(warns, fmt.Sprintf("%s %s no hypervisor (no node agent reporting)", quotedNames(silent), oneOrMany(len(silent), "reports", "report")))
	}
	warns = append(warns, bad...)
	switch {
	case len(none) > 0:
		return t(Failed, problems(append([]string{fmt.Sprintf("%s %s no QEMU (qemu-system-x86_64), so %s cannot run the virtual machines of a qemu cluster",
			quoteHosts(none), oneOrMany(len(none), "has", "have"), oneOrMany(len(none), "it", "they"))}, warns...)))
	case len(warns) > 0:
		return t(Warning, problems(warns))
	}
	var acc, ver string
	for a := range accel {
		acc = a
	}
	for v := range version {
		ver = v
	}
	return t(Passed, fmt.Sprintf("%s QEMU %s with %s: virtual machines can live-migrate between any two nodes",
		allNodesHave(len(e.nodes)), ver, strings.ToUpper(acc)))
}

// groups renders value → nodes as `"kvm" on "a", "tcg" on "b" and "c"`.
func groups(m map[string][]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%q on %s", k, quotedNames(m[k]))
	}
	return strings.Join(parts, ", ")
}
