package validate

import (
	"fmt"
	"sort"
	"strings"
)

// Test names of the Inventory category.
const (
	TestClusterName       = "Validate Cluster Name"
	TestListNodes         = "List Cluster Nodes"
	TestNodeCount         = "Validate Node Count"
	TestDistinctNodes     = "Validate Distinct Node Names"
	TestMemory            = "List Memory Information"
	TestProcessorModel    = "List Processor Information"
	TestProcessorCores    = "List Processor Core Count"
	inventory             = CategoryInventory
	recommendedIdentical  = "identical nodes are recommended so that any node can host every virtual machine"
	noRegisteredNodeCheck = "no registered node to check"
)

func inventoryTests(e *env) []Test {
	return []Test{
		clusterNameTest(e),
		listNodesTest(e),
		nodeCountTest(e),
		distinctNodesTest(e),
		memoryTest(e),
		processorModelTest(e),
		processorCoresTest(e),
		reportedInventoryTest(e),
	}
}

func clusterNameTest(e *env) Test {
	if err := CheckName(e.in.ClusterName); err != nil {
		return test(inventory, TestClusterName, AttrName, Failed, err.Error())
	}
	return test(inventory, TestClusterName, AttrName, Passed,
		fmt.Sprintf("cluster name %q is a valid NetBIOS name", e.in.ClusterName))
}

func listNodesTest(e *env) Test {
	if len(e.unregistered) == 0 {
		if len(e.nodes) == 0 {
			return test(inventory, TestListNodes, AttrNodes, Passed, "no node is requested, so none is unregistered")
		}
		return test(inventory, TestListNodes, AttrNodes, Passed,
			fmt.Sprintf("%s %s registered: %s", plural(len(e.nodes), "node"),
				isAre(len(e.nodes)), strings.Join(e.nodeNames(), ", ")))
	}
	hosts := make([]string, 0, len(e.in.Hosts))
	for h := range e.in.Hosts {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	var clauses []string
	for _, n := range e.unregistered {
		c := fmt.Sprintf("node %q is not a registered host", n)
		for _, h := range hosts {
			if strings.EqualFold(h, n) {
				c += fmt.Sprintf(" (did you mean %q?)", h)
				break
			}
		}
		clauses = append(clauses, c)
	}
	msg := problems(clauses) + "; every node must be a registered kayo_host"
	if len(hosts) > 0 {
		msg += " (registered: " + strings.Join(hosts, ", ") + ")"
	}
	return test(inventory, TestListNodes, AttrNodes, Failed, msg)
}

func nodeCountTest(e *env) Test {
	n := len(e.requested)
	allowed := fmt.Sprintf("a cluster has 1 to %d nodes", MaxNodes)
	switch {
	case n == 0:
		return test(inventory, TestNodeCount, AttrNodes, Failed, "no node is requested; "+allowed)
	case n > MaxNodes:
		return test(inventory, TestNodeCount, AttrNodes, Failed,
			fmt.Sprintf("%s are requested; %s", plural(n, "node"), allowed))
	}
	return test(inventory, TestNodeCount, AttrNodes, Passed,
		fmt.Sprintf("%s %s requested; %s", plural(n, "node"), isAre(n), allowed))
}

func distinctNodesTest(e *env) Test {
	count := map[string]int{}
	spelled := map[string][]string{}
	for _, n := range e.in.Nodes {
		k := strings.ToLower(n)
		count[k]++
		spelled[k] = appendUnique(spelled[k], n)
	}
	var clauses []string
	for _, first := range e.requested {
		k := strings.ToLower(first)
		if count[k] < 2 {
			continue
		}
		if len(spelled[k]) == 1 {
			clauses = append(clauses, fmt.Sprintf("node %q is listed %d times", first, count[k]))
			continue
		}
		q := make([]string, len(spelled[k]))
		for i, s := range spelled[k] {
			q[i] = fmt.Sprintf("%q", s)
		}
		clauses = append(clauses, fmt.Sprintf("nodes %s name the same host (names are case-insensitive)", joinAnd(q)))
	}
	if len(clauses) > 0 {
		return test(inventory, TestDistinctNodes, AttrNodes, Failed,
			problems(clauses)+"; each node must be listed once")
	}
	msg := fmt.Sprintf("each of the %d requested nodes is listed once", len(e.requested))
	switch len(e.requested) {
	case 0:
		msg = "no node is requested, so none is listed twice"
	case 1:
		msg = fmt.Sprintf("the only requested node, %q, is listed once", e.requested[0])
	}
	return test(inventory, TestDistinctNodes, AttrNodes, Passed, msg)
}

func memoryTest(e *env) Test {
	return sameValueTest(e, TestMemory, "memory",
		func(n node) string { return fmt.Sprintf("%d MB", n.MemoryMB) })
}

func processorModelTest(e *env) Test {
	return sameValueTest(e, TestProcessorModel, "processor model",
		func(n node) string { return fmt.Sprintf("%q", strings.TrimSpace(n.ProcessorModel)) })
}

func processorCoresTest(e *env) Test {
	return sameValueTest(e, TestProcessorCores, "processor core count",
		func(n node) string { return plural(n.ProcessorCores, "core") })
}

// sameValueTest warns when a hardware fact differs across nodes, naming each
// host's value.
func sameValueTest(e *env, name, what string, value func(node) string) Test {
	if len(e.nodes) == 0 {
		return test(inventory, name, AttrNodes, Passed, noRegisteredNodeCheck)
	}
	groups := groupNodes(e.nodes, value)
	if len(groups) == 1 {
		return test(inventory, name, AttrNodes, Passed,
			fmt.Sprintf("%s the same %s: %s", allNodesHave(len(e.nodes)), what, groups[0].value))
	}
	return test(inventory, name, AttrNodes, Warning,
		fmt.Sprintf("%s differs across nodes: %s; %s", what, describeGroups(groups), recommendedIdentical))
}

// group is a set of nodes sharing one value, in node order.
type group struct {
	value string
	key   string
	hosts []string
}

// groupNodes groups nodes by value (compared case-insensitively), groups in
// order of first appearance among the (sorted) nodes.
func groupNodes(nodes []node, value func(node) string) []group {
	var out []group
	idx := map[string]int{}
	for _, n := range nodes {
		v := value(n)
		k := norm(v)
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, group{value: v, key: k})
		}
		out[i].hosts = append(out[i].hosts, n.name)
	}
	return out
}

// describeGroups renders `host "a" has 32768 MB, hosts "b" and "c" have 16384 MB`.
func describeGroups(groups []group) string {
	parts := make([]string, len(groups))
	for i, g := range groups {
		verb := "has"
		if len(g.hosts) > 1 {
			verb = "have"
		}
		parts[i] = fmt.Sprintf("%s %s %s", quoteHosts(g.hosts), verb, g.value)
	}
	return strings.Join(parts, ", ")
}

func allNodesHave(n int) string {
	if n == 1 {
		return "the only node has"
	}
	if n == 2 {
		return "both nodes have"
	}
	return fmt.Sprintf("all %d nodes have", n)
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
