package validate

import (
	"fmt"
	"strings"
)

// Test names of the Storage and System Configuration categories.
const (
	TestSharedStorage   = "List Shared Storage"
	TestOSEdition       = "Validate Operating System Edition"
	TestFeatures        = "Validate Required Features"
	TestProcessorVendor = "Validate Same Processor Vendor"
	storage             = CategoryStorage
	system              = CategorySystemConfiguration
)

// Editions that support failover clustering.
const (
	EditionStandard   = "standard"
	EditionEnterprise = "enterprise"
	EditionDatacenter = "datacenter"
)

func storageTests(e *env) []Test {
	if e.in.Storage != nil && len(e.nodes) > 0 {
		return probedStorageTests(e) // storage_probed.go
	}
	if len(e.nodes) == 0 {
		return []Test{test(storage, TestSharedStorage, AttrNodes, Passed, noRegisteredNodeCheck)}
	}
	return []Test{test(storage, TestSharedStorage, AttrNodes, Passed,
		fmt.Sprintf("%s share the cluster's embedded SAN, one store that every node reaches, so a virtual machine's disks never move between nodes",
			plural(len(e.nodes), "node")))}
}

func systemTests(e *env) []Test {
	return []Test{
		osEditionTest(e),
		featuresTest(e),
		processorVendorTest(e),
		processorCompatTest(e),
		clockTest(e),
		hypervisorTest(e),
	}
}

// ClusterCapableEdition reports whether an OS edition supports failover
// clustering (enterprise or datacenter, case-insensitively).
func ClusterCapableEdition(edition string) bool {
	switch norm(edition) {
	case EditionEnterprise, EditionDatacenter:
		return true
	}
	return false
}

func osEditionTest(e *env) Test {
	if len(e.nodes) == 0 {
		return test(system, TestOSEdition, AttrNodes, Passed, noRegisteredNodeCheck)
	}
	var clauses []string
	for _, n := range e.nodes {
		if !ClusterCapableEdition(n.OSEdition) {
			clauses = append(clauses, fmt.Sprintf("host %q runs os_edition %q", n.name, n.OSEdition))
		}
	}
	if len(clauses) > 0 {
		return test(system, TestOSEdition, AttrNodes, Failed,
			problems(clauses)+"; failover clustering needs Windows Server 2008 enterprise or datacenter")
	}
	subject := plural(len(e.nodes), "node") + " run"
	if len(e.nodes) == 1 {
		subject = "1 node runs"
	}
	return test(system, TestOSEdition, AttrNodes, Passed,
		subject+" Windows Server 2008 Enterprise or Datacenter")
}

// normFeature compares feature names case-insensitively and treats spaces
// and underscores as hyphens ("failover clustering" = "Failover-Clustering").
func normFeature(f string) string {
	return strings.NewReplacer(" ", "-", "_", "-").Replace(norm(f))
}

// MissingFeatures returns the required features h lacks, in RequiredFeatures
// order.
func MissingFeatures(h Host) []string {
	have := map[string]bool{}
	for _, f := range h.Features {
		have[normFeature(f)] = true
	}
	var missing []string
	for _, f := range RequiredFeatures {
		if !have[normFeature(f)] {
			missing = append(missing, f)
		}
	}
	return missing
}

func featuresTest(e *env) Test {
	required := joinAnd(RequiredFeatures)
	if len(e.nodes) == 0 {
		return test(system, TestFeatures, AttrNodes, Passed, noRegisteredNodeCheck)
	}
	var clauses []string
	for _, n := range e.nodes {
		missing := MissingFeatures(n.Host)
		switch len(missing) {
		case 0:
		case 1:
			clauses = append(clauses, fmt.Sprintf("host %q lacks feature %s", n.name, missing[0]))
		default:
			clauses = append(clauses, fmt.Sprintf("host %q lacks features %s", n.name, joinAnd(missing)))
		}
	}
	if len(clauses) > 0 {
		return test(system, TestFeatures, AttrNodes, Failed,
			fmt.Sprintf("%s; every node needs the %s features", problems(clauses), required))
	}
	return test(system, TestFeatures, AttrNodes, Passed,
		fmt.Sprintf("%s the %s features", allNodesHave(len(e.nodes)), required))
}

func processorVendorTest(e *env) Test {
	if len(e.nodes) == 0 {
		return test(system, TestProcessorVendor, AttrNodes, Passed, noRegisteredNodeCheck)
	}
	groups := groupNodes(e.nodes, func(n node) string { return fmt.Sprintf("%q", strings.TrimSpace(n.ProcessorVendor)) })
	if len(groups) == 1 {
		msg := fmt.Sprintf("%s the same processor vendor: %s", allNodesHave(len(e.nodes)), groups[0].value)
		if len(e.nodes) > 1 {
			msg += ", so running virtual machines can live-migrate between them"
		}
		return test(system, TestProcessorVendor, AttrNodes, Passed, msg)
	}
	var between string
	if len(groups) == 2 {
		between = fmt.Sprintf("live migration between %s and %s falls back to quick migration",
			quotedList(groups[0].hosts), quotedList(groups[1].hosts))
		if len(groups[0].hosts) > 1 || len(groups[1].hosts) > 1 {
			between = fmt.Sprintf("live migration between any of %s and any of %s falls back to quick migration",
				quotedList(groups[0].hosts), quotedList(groups[1].hosts))
		}
	} else {
		between = "live migration between any two nodes of different vendors falls back to quick migration"
	}
	return test(system, TestProcessorVendor, AttrNodes, Warning,
		fmt.Sprintf("processor vendor differs across nodes: %s; %s (save state, move, restore)",
			describeGroups(groups), between))
}

// quotedList renders one name as `"a"` and several as `("a", "b")`, so a
// "between ... and ..." sentence stays unambiguous.
func quotedList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return "(" + strings.Join(q, ", ") + ")"
}
