package validate

import (
	"strings"
	"testing"
)

func TestHypervisorCapability(t *testing.T) {
	qemu := func(version, accel string) func(*Host) {
		return func(h *Host) {
			h.Reported = report(haswellFlags)
			h.Reported.At = measured
			if version != "" {
				h.Reported.Hypervisor = &HypervisorReport{Name: "qemu", Version: version, Accel: accel}
			}
		}
	}
	in := seed()
	in.Hypervisor = HypervisorQEMU
	if x := find(t, Run(in), TestHypervisor); x.Result != Passed || x.Source != SourceDeclared {
		t.Errorf("no agents: %+v, want passed from declared facts", x)
	}
	for _, c := range []struct {
		name     string
		y21, y22 func(*Host)
		res      Result
		want     string
	}{
		{"same", qemu("7.2.15", "tcg"), qemu("7.2.15", "tcg"), Passed, "both nodes have QEMU 7.2.15 with TCG"},
		{"no QEMU", qemu("7.2.15", "kvm"), qemu("", ""), Failed, `host "Y-22-2k8x64" has no QEMU`},
		{"accel differs", qemu("7.2.15", "kvm"), qemu("7.2.15", "tcg"), Warning, `acceleration differs: "kvm" on "Y-21-2k8x64", "tcg" on "Y-22-2k8x64"`},
		{"version differs", qemu("8.2.2", "kvm"), qemu("7.2.15", "kvm"), Warning, `QEMU version differs: "7.2.15" on "Y-22-2k8x64", "8.2.2" on "Y-21-2k8x64"`},
		{"one silent", qemu("7.2.15", "kvm"), func(*Host) {}, Warning, `"Y-22-2k8x64" reports no hypervisor`},
	} {
		in := seed()
		in.Hypervisor = HypervisorQEMU
		edit(&in, y21, c.y21)
		edit(&in, y22, c.y22)
		x := find(t, Run(in), TestHypervisor)
		if x.Result != c.res || x.Source != SourceProbed || !strings.Contains(x.Message, c.want) {
			t.Errorf("%s: %+v, want %s saying %s", c.name, x, c.res, c.want)
		}
	}
	in = seed()
	edit(&in, y22, qemu("", ""))
	if x := find(t, Run(in), TestHypervisor); x.Result != Passed || !strings.Contains(x.Message, `"simulator"`) {
		t.Errorf("a simulator cluster needs no QEMU: %+v", x)
	}
}
