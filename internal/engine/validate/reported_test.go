package validate

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// haswellFlags is a Haswell host's cpuinfo flags, synthetic ones included.
var haswellFlags = strings.Fields("fpu vme sse sse2 pni ssse3 sse4_1 sse4_2 popcnt cx16 lahf_lm aes pclmulqdq avx xsave x2apic " +
	"f16c rdrand fsgsbase smep erms avx2 bmi1 bmi2 fma movbe invpcid abm constant_tsc vmx xsaveopt")

func report(flags []string) *Reported {
	return &Reported{ProcessorVendor: "intel", ProcessorModel: "Intel(R) Xeon(R) CPU E5440 @ 2.83GHz",
		ProcessorCores: 8, CPUFlags: flags, MemoryMB: 31900}
}

func TestReportsWithoutAgentsSayDeclared(t *testing.T) {
	r := Run(seed())
	for _, name := range []string{TestReportedInventory, TestProcessorCompat} {
		x := find(t, r, name)
		if x.Result != Passed || x.Source != SourceDeclared || !strings.Contains(x.Message, "computed from declared facts") {
			t.Errorf("%s without agents: %+v, want passed, source declared, said so", name, x)
		}
	}
}

func TestReportedInventoryMismatchFailsNamingBoth(t *testing.T) {
	in := seed()
	edit(&in, y21, func(h *Host) { h.Reported = report(haswellFlags) })
	edit(&in, y22, func(h *Host) { r := report(haswellFlags); r.MemoryMB = 16000; r.ProcessorCores = 4; h.Reported = r })
	x := find(t, Run(in), TestReportedInventory)
	if x.Result != Failed || x.Source != SourceProbed {
		t.Fatalf("mismatch: %+v, want failed and probed", x)
	}
	for _, want := range []string{`host "Y-22-2k8x64" declares memory_mb 32768 but its agent reports 16000`,
		`host "Y-22-2k8x64" declares processor_cores 8 but its agent reports 4`} {
		if !strings.Contains(x.Message, want) {
			t.Errorf("message %q lacks %q", x.Message, want)
		}
	}
	if strings.Contains(x.Message, y21) {
		t.Errorf("message names the matching host: %q", x.Message)
	}
	if Run(in).Passed() {
		t.Error("a report that contradicts the declared memory must fail validation")
	}
}

func TestReportedInventoryMatchAndSilentNode(t *testing.T) {
	in := seed()
	edit(&in, y21, func(h *Host) { h.Reported = report(haswellFlags) })
	x := find(t, Run(in), TestReportedInventory)
	if x.Result != Warning || !strings.Contains(x.Message, `"Y-22-2k8x64" reports nothing`) {
		t.Errorf("one node silent: %+v, want a warning naming it", x)
	}
	edit(&in, y22, func(h *Host) { h.Reported = report(haswellFlags) })
	x = find(t, Run(in), TestReportedInventory)
	if x.Result != Passed || x.Source != SourceProbed {
		t.Errorf("both match (memory within tolerance, model by words): %+v", x)
	}
}

func TestModelAndMemoryMatching(t *testing.T) {
	for _, c := range []struct {
		declared, reported string
		want               bool
	}{
		{"Xeon E5440", "Intel(R) Xeon(R) CPU E5440 @ 2.83GHz", true},
		{"xeon e5440", "Intel(R) Xeon(R) CPU E5440 @ 2.83GHz", true},
		{"Xeon E5-2670", "Intel(R) Xeon(R) CPU E5440 @ 2.83GHz", false},
		{"Opteron 2356", "Intel(R) Xeon(R) CPU E5440 @ 2.83GHz", false},
	} {
		if got := modelMatches(c.declared, c.reported); got != c.want {
			t.Errorf("modelMatches(%q, %q) = %v, want %v", c.declared, c.reported, got, c.want)
		}
	}
	for _, c := range []struct {
		declared, reported int64
		want               bool
	}{{32768, 32768, true}, {32768, 31000, true}, {32768, 30000, false}, {32768, 40000, false}} {
		if got := memoryMatches(c.declared, c.reported); got != c.want {
			t.Errorf("memoryMatches(%d, %d) = %v, want %v", c.declared, c.reported, got, c.want)
		}
	}
}

func TestCommonCPU(t *testing.T) {
	nehalemOnly := strings.Fields("fpu sse sse2 pni ssse3 sse4_1 sse4_2 popcnt cx16 lahf_lm constant_tsc")
	c := CommonCPU(map[string][]string{"A": haswellFlags, "B": haswellFlags}, map[string]string{"A": "intel", "B": "intel"})
	if c.Model != "Haswell-noTSX" || len(c.Lacking) != 0 {
		t.Errorf("two Haswells: %+v, want model Haswell-noTSX and no node lacking", c)
	}
	c = CommonCPU(map[string][]string{"A": haswellFlags, "B": haswellFlags, "C": nehalemOnly},
		map[string]string{"A": "intel", "B": "intel", "C": "intel"})
	if c.Model != "Nehalem" {
		t.Errorf("with a Nehalem node: model %s, want Nehalem", c.Model)
	}
	want := []string{"abm", "aes", "avx", "avx2", "bmi1", "bmi2", "erms", "f16c", "fma", "fsgsbase", "invpcid", "movbe",
		"pclmulqdq", "rdrand", "smep", "x2apic", "xsave", "xsaveopt"}
	if !reflect.DeepEqual(c.Lacking, map[string][]string{"C": want}) {
		t.Errorf("lacking = %v, want only C lacking %v", c.Lacking, want)
	}
	for _, f := range c.Flags {
		if f == "constant_tsc" || f == "fpu" {
			t.Errorf("common flags hold %q, which is not a guest feature this table checks", f)
		}
	}
	c = CommonCPU(map[string][]string{"A": haswellFlags, "B": haswellFlags}, map[string]string{"A": "intel", "B": "amd"})
	if c.Model != "qemu64" {
		t.Errorf("mixed vendors: model %s, want qemu64 (no vendor's model fits both)", c.Model)
	}
}

func TestProcessorCompatWarnsNamingTheNodeAndFlags(t *testing.T) {
	in := seed()
	edit(&in, y21, func(h *Host) { h.Reported = report(haswellFlags) })
	x := find(t, Run(in), TestProcessorCompat)
	if x.Result != Warning || !strings.Contains(x.Message, `"Y-22-2k8x64" reports no CPU flags`) {
		t.Errorf("one node without flags: %+v, want a warning naming it (never a pass on missing data)", x)
	}
	edit(&in, y22, func(h *Host) {
		h.Reported = report(strings.Fields("sse sse2 pni ssse3 sse4_1 sse4_2 popcnt cx16 lahf_lm aes pclmulqdq avx xsave x2apic"))
	})
	x = find(t, Run(in), TestProcessorCompat)
	if x.Result != Warning || x.Source != SourceProbed || !strings.Contains(x.Message, `host "Y-22-2k8x64" lacks abm, avx2, bmi1, bmi2`) ||
		!strings.Contains(x.Message, "CPU model SandyBridge") {
		t.Errorf("a SandyBridge node beside a Haswell: %+v, want a warning naming it, its missing flags and model SandyBridge", x)
	}
	edit(&in, y22, func(h *Host) { h.Reported = report(haswellFlags) })
	if x = find(t, Run(in), TestProcessorCompat); x.Result != Passed || !strings.Contains(x.Message, "Haswell-noTSX") {
		t.Errorf("identical nodes: %+v, want passed with model Haswell-noTSX", x)
	}
}

// A declared adapter is matched to the reported interfaces by subnet: the
// same address passes, another address in its network or no interface in
// it fails naming the host, the adapter and both values; an adapter the
// host takes from its agent is not compared.
func TestReportedAdaptersMatchDeclaredBySubnet(t *testing.T) {
	ifaces := func(public, heartbeat string) []ReportedAdapter {
		out := []ReportedAdapter{{Name: "eth0", Up: true, Addresses: []netip.Prefix{netip.MustParsePrefix(public), netip.MustParsePrefix("fe80::1/64")}}}
		if heartbeat != "" {
			out = append(out, ReportedAdapter{Name: "eth1", Up: false, Addresses: []netip.Prefix{netip.MustParsePrefix(heartbeat)}})
		}
		return out
	}
	in := seed()
	edit(&in, y21, func(h *Host) {
		r := report(haswellFlags)
		r.Adapters = ifaces("192.0.2.21/24", "10.10.10.21/24")
		h.Reported = r
	})
	edit(&in, y22, func(h *Host) { r := report(haswellFlags); r.Adapters = ifaces("192.0.2.99/24", ""); h.Reported = r })
	x := find(t, Run(in), TestReportedInventory)
	if x.Result != Failed {
		t.Fatalf("Y-22 reports another address and no heartbeat interface: %+v, want failed", x)
	}
	for _, want := range []string{
		`host "Y-22-2k8x64" declares network_adapters "Public" address 192.0.2.22 but its agent reports 192.0.2.99 (interface eth0) in network 192.0.2.0/24`,
		`host "Y-22-2k8x64" declares network_adapters "Heartbeat" in network 10.10.10.0/24 (address 10.10.10.22) but its agent reports no interface in that network (it reports eth0 192.0.2.99/24)`,
	} {
		if !strings.Contains(x.Message, want) {
			t.Errorf("message %q lacks %q", x.Message, want)
		}
	}
	if strings.Contains(x.Message, y21) {
		t.Errorf("Y-21 reports its declared addresses (one link down) and is named: %q", x.Message)
	}
	edit(&in, y22, func(h *Host) { h.FromAgent = []string{"network_adapters"} })
	if x = find(t, Run(in), TestReportedInventory); x.Result != Passed {
		t.Errorf("adapters taken from the agent are not compared with it: %+v", x)
	}
	edit(&in, y22, func(h *Host) { h.FromAgent = nil; h.Reported.Adapters = nil })
	if x = find(t, Run(in), TestReportedInventory); x.Result != Passed {
		t.Errorf("a report listing no interface checks no adapter: %+v", x)
	}
}
