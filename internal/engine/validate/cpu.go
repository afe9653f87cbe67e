package validate

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Processor compatibility for live migration, from the CPU flags the node
// agents report (Linux /proc/cpuinfo names). A guest runs with one CPU
// model on every node it may move to; a node that lacks a feature the
// others have forces the whole cluster down to what it has.

// TestProcessorCompat is the System Configuration test of it.
const TestProcessorCompat = "Validate Processor Compatibility for Live Migration"

// GuestFlags are the CPU features a guest can see and a live migration
// must find on the target (CPUID features QEMU's x86 models set), in
// /proc/cpuinfo's spelling. Other cpuinfo flags (kernel-synthesised ones
// such as constant_tsc, or host-only ones such as vmx) do not matter to
// a guest and are ignored.
var GuestFlags = []string{
	"3dnowprefetch", "abm", "adx", "aes", "avx", "avx2", "avx512_bf16", "avx512_vnni", "avx512bw",
	"avx512cd", "avx512dq", "avx512f", "avx512vl", "bmi1", "bmi2", "clflushopt", "clwb", "clzero",
	"cx16", "erms", "f16c", "fma", "fsgsbase", "fsrm", "gfni", "invpcid", "lahf_lm", "misalignsse",
	"movbe", "pclmulqdq", "pdpe1gb", "pku", "pni", "popcnt", "rdpid", "rdrand", "rdseed", "sha_ni",
	"smap", "smep", "sse4_1", "sse4_2", "sse4a", "ssse3", "umip", "vaes", "vpclmulqdq", "wbnoinvd",
	"x2apic", "xgetbv1", "xsave", "xsavec", "xsaveopt", "xsaves",
}

// CPUModel is one of QEMU's named x86 models with the guest flags this
// table checks for it (QEMU's model sets more; these are the ones that
// tell the generations apart). Models are listed oldest first per vendor.
type CPUModel struct {
	Name   string
	Vendor string // intel | amd | "" (any)
	Flags  []string
}

func with(base []string, more ...string) []string { return append(slices.Clone(base), more...) }

var (
	nehalem     = []string{"pni", "ssse3", "sse4_1", "sse4_2", "popcnt", "cx16", "lahf_lm"}
	westmere    = with(nehalem, "aes", "pclmulqdq")
	sandyBridge = with(westmere, "avx", "xsave", "x2apic")
	ivyBridge   = with(sandyBridge, "f16c", "rdrand", "fsgsbase", "smep", "erms")
	haswell     = with(ivyBridge, "avx2", "bmi1", "bmi2", "fma", "movbe", "invpcid", "abm")
	broadwell   = with(haswell, "adx", "rdseed", "smap", "3dnowprefetch")
	skylake     = with(broadwell, "xsavec", "xgetbv1")
	skylakeSrv  = with(skylake, "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "clwb", "pku", "clflushopt")
	opteronG3   = []string{"pni", "cx16", "popcnt", "abm", "sse4a", "lahf_lm"}
	epyc        = with(opteronG3, "ssse3", "sse4_1", "sse4_2", "aes", "pclmulqdq", "avx", "avx2", "xsave", "f16c",
		"rdrand", "fsgsbase", "smep", "bmi1", "bmi2", "fma", "movbe", "adx", "rdseed", "smap", "clflushopt",
		"sha_ni", "xsavec", "xgetbv1", "misalignsse", "3dnowprefetch")
	epycRome = with(epyc, "clwb", "umip", "rdpid", "wbnoinvd")
)

// CPUModels is the table CommonCPU picks from.
var CPUModels = []CPUModel{
	{Name: "qemu64"},
	{Name: "Nehalem", Vendor: "intel", Flags: nehalem},
	{Name: "Westmere", Vendor: "intel", Flags: westmere},
	{Name: "SandyBridge", Vendor: "intel", Flags: sandyBridge},
	{Name: "IvyBridge", Vendor: "intel", Flags: ivyBridge},
	{Name: "Haswell-noTSX", Vendor: "intel", Flags: haswell},
	{Name: "Broadwell-noTSX", Vendor: "intel", Flags: broadwell},
	{Name: "Skylake-Client-noTSX-IBRS", Vendor: "intel", Flags: skylake},
	{Name: "Skylake-Server-noTSX-IBRS", Vendor: "intel", Flags: skylakeSrv},
	{Name: "Cascadelake-Server-noTSX", Vendor: "intel", Flags: with(skylakeSrv, "avx512_vnni")},
	{Name: "Opteron_G3", Vendor: "amd", Flags: opteronG3},
	{Name: "EPYC", Vendor: "amd", Flags: epyc},
	{Name: "EPYC-Rome", Vendor: "amd", Flags: epycRome},
	{Name: "EPYC-Milan", Vendor: "amd", Flags: with(epycRome, "pku", "invpcid", "erms", "fsrm")},
}

// CPUCompat is the processor model every node can run.
type CPUCompat struct {
	// Flags are the guest flags every node has, sorted.
	Flags []string
	// Model is the newest model of CPUModels all nodes can run (qemu64
	// when no other fits); run VMs with it, or with Flags.
	Model string
	// Lacking names, per node that forces the cluster below the others,
	// the guest flags every other node has and it lacks, sorted.
	Lacking map[string][]string
}

// CommonCPU computes the common guest CPU of nodes (node → its reported
// cpuinfo flags, all of them; vendor → its normalised vendor).
func CommonCPU(flags map[string][]string, vendor map[string]string) CPUCompat {
	guest := map[string]bool{}
	for _, f := range GuestFlags {
		guest[f] = true
	}
	sets := map[string]map[string]bool{}
	for n, fs := range flags {
		s := map[string]bool{}
		for _, f := range fs {
			if guest[f] {
				s[f] = true
			}
		}
		sets[n] = s
	}
	out := CPUCompat{Lacking: map[string][]string{}}
	in := func(f string, skip string) bool {
		for n, s := range sets {
			if n != skip && !s[f] {
				return false
			}
		}
		return true
	}
	for _, f := range GuestFlags {
		if len(sets) > 0 && in(f, "") {
			out.Flags = append(out.Flags, f)
		}
	}
	if len(sets) > 1 {
		for n, s := range sets {
			var lack []string
			for _, f := range GuestFlags {
				if !s[f] && in(f, n) {
					lack = append(lack, f)
				}
			}
			if len(lack) > 0 {
				out.Lacking[n] = lack
			}
		}
	}
	vendors := map[string]bool{}
	for n := range sets {
		vendors[norm(vendor[n])] = true
	}
	common := map[string]bool{}
	for _, f := range out.Flags {
		common[f] = true
	}
	out.Model = CPUModels[0].Name
	for _, m := range CPUModels {
		if m.Vendor != "" && (len(vendors) != 1 || !vendors[m.Vendor]) {
			continue
		}
		fits := true
		for _, f := range m.Flags {
			fits = fits && common[f]
		}
		if fits {
			out.Model = m.Name
		}
	}
	return out
}

func processorCompatTest(e *env) Test {
	if len(e.nodes) == 0 {
		return test(system, TestProcessorCompat, AttrNodes, Passed, noRegisteredNodeCheck)
	}
	flags, vendor := map[string][]string{}, map[string]string{}
	var silent []string
	var agents []AgentData
	for _, n := range e.nodes {
		if n.Reported == nil || len(n.Reported.CPUFlags) == 0 {
			if _, bad := e.in.NotReporting[n.name]; !bad {
				silent = append(silent, n.name)
			}
			continue
		}
		flags[n.name], vendor[n.name] = n.Reported.CPUFlags, n.Reported.ProcessorVendor
		agents = append(agents, AgentData{Node: n.name, At: n.Reported.At})
	}
	bad := e.notReporting()
	if len(flags) == 0 && len(bad) == 0 {
		return declared(test(system, TestProcessorCompat, AttrNodes, Passed,
			"computed from declared facts: no node agent reports CPU flags, so only the processor vendors are compared (see "+TestProcessorVendor+")"))
	}
	probed := func(x Test) Test {
		x.Source, x.Agents = SourceProbed, agents
		return x
	}
	if len(silent) > 0 || len(bad) > 0 {
		var msg []string
		if len(silent) > 0 {
			msg = append(msg, fmt.Sprintf("%s %s no CPU flags (no node agent reporting)", quotedNames(silent), oneOrMany(len(silent), "reports", "report")))
		}
		msg = append(msg, bad...)
		return probed(test(system, TestProcessorCompat, AttrNodes, Warning,
			fmt.Sprintf("not checked: %s; live migration to or from %s may fail on a missing CPU feature",
				problems(msg), oneOrMany(len(silent)+len(bad), "it", "them"))))
	}
	c := CommonCPU(flags, vendor)
	if len(c.Lacking) == 0 {
		return probed(test(system, TestProcessorCompat, AttrNodes, Passed,
			fmt.Sprintf("%s the same %d guest CPU features checked: virtual machines run with CPU model %s and can live-migrate between any two nodes",
				allNodesHave(len(e.nodes)), len(c.Flags), c.Model)))
	}
	names := make([]string, 0, len(c.Lacking))
	for n := range c.Lacking {
		names = append(names, n)
	}
	sort.Strings(names)
	clauses := make([]string, len(names))
	for i, n := range names {
		clauses[i] = fmt.Sprintf("host %q lacks %s, which every other node has", n, strings.Join(c.Lacking[n], ", "))
	}
	return probed(test(system, TestProcessorCompat, AttrNodes, Warning,
		fmt.Sprintf("%s; so that a live migration cannot fail on a missing CPU feature, virtual machines run with CPU model %s (the features every node has)",
			problems(clauses), c.Model)))
}

// quotedNames renders names as `"a"`, `"a" and "b"`, `"a", "b" and "c"`.
func quotedNames(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return joinAnd(q)
}

// oneOrMany picks the word agreeing with a count of n.
func oneOrMany(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
