package validate

import (
	"strings"
	"testing"
	"time"
)

var measured = time.Date(2026, 12, 5, 17, 0, 0, 0, time.UTC)

func TestClockOffsetBounds(t *testing.T) {
	if x := find(t, Run(seed()), TestClock); x.Result != Passed || x.Source != SourceDeclared || len(x.Agents) != 0 {
		t.Errorf("no agents: %+v, want passed from declared facts", x)
	}
	for _, c := range []struct {
		offset time.Duration
		res    Result
		want   string
	}{
		{300 * time.Millisecond, Passed, `the farthest: host "Y-22-2k8x64", +300 ms`},
		{-10003 * time.Millisecond, Warning, `host "Y-22-2k8x64"'s clock is -10003 ms off the cluster's`},
		{6 * time.Minute, Failed, `host "Y-22-2k8x64"'s clock is +360000 ms off the cluster's`},
	} {
		in := seed()
		in.Clocks = map[string]Clock{y21: {At: measured}, y22: {Offset: c.offset, At: measured.Add(time.Second)}}
		r := Run(in)
		x := find(t, r, TestClock)
		if x.Result != c.res || x.Source != SourceProbed || !strings.Contains(x.Message, c.want) {
			t.Errorf("offset %s: %+v, want %s saying %s", c.offset, x, c.res, c.want)
		}
		if c.res != Passed && strings.Contains(x.Message, `"Y-21-2k8x64"'s clock`) {
			t.Errorf("offset %s: the synchronised node is blamed: %s", c.offset, x.Message)
		}
		if len(x.Agents) != 2 || x.Agents[1] != (AgentData{Node: y22, At: measured.Add(time.Second)}) {
			t.Errorf("offset %s: agents %+v, want both nodes with when they measured", c.offset, x.Agents)
		}
		if r.Passed() != (c.res != Failed) {
			t.Errorf("offset %s: report passed = %v", c.offset, r.Passed())
		}
	}
	// A node without a measurement is never passed.
	in := seed()
	in.Clocks = map[string]Clock{y21: {At: measured}}
	if x := find(t, Run(in), TestClock); x.Result != Warning || !strings.Contains(x.Message, `"Y-22-2k8x64" has no clock offset`) {
		t.Errorf("one node unmeasured: %+v", x)
	}
}

// An agent whose report or probes are garbage is named as not reporting,
// with why, in every test that needs its data; none of them passes, even
// when no other agent reports (which alone would be the lab's declared
// pass).
func TestGarbageAgentIsNamedNeverPassed(t *testing.T) {
	for _, others := range []bool{false, true} {
		in := seed()
		in.NotReporting = map[string]string{y22: "report version 1, want 2 (an older agent)"}
		in.NotProbing = map[string]string{y22: "its probe record is unreadable"}
		if others {
			edit(&in, y21, func(h *Host) { h.Reported = report(haswellFlags); h.Reported.At = measured })
			in.Probing = map[string]bool{y21: true}
			in.ProbedAt = map[string]time.Time{y21: measured}
			in.Clocks = map[string]Clock{y21: {At: measured}}
		}
		r := Run(in)
		for name, want := range map[string]string{
			TestReportedInventory:    `host "Y-22-2k8x64" is not reporting (report: report version 1, want 2 (an older agent))`,
			TestProcessorCompat:      `host "Y-22-2k8x64" is not reporting (report: report version 1`,
			TestNetworkCommunication: `host "Y-22-2k8x64" is not reporting (probes: its probe record is unreadable)`,
			TestClock:                `host "Y-22-2k8x64" is not reporting (probes: its probe record is unreadable)`,
		} {
			x := find(t, r, name)
			if x.Result == Passed || x.Source != SourceProbed || !strings.Contains(x.Message, want) {
				t.Errorf("others reporting %v: %s = %+v, want a warning containing %s", others, name, x, want)
			}
			if others && (len(x.Agents) != 1 || x.Agents[0] != (AgentData{Node: y21, At: measured})) {
				t.Errorf("%s: agents %+v, want only Y-21's data at %s", name, x.Agents, measured)
			}
		}
	}
}

// A fact the configuration left out (taken from the agent) is never
// reported as a declared value contradicting the report.
func TestFactsFromAgentAreNotCompared(t *testing.T) {
	in := seed()
	for _, n := range []string{y21, y22} {
		edit(&in, n, func(h *Host) { h.Reported = report(haswellFlags); h.Reported.MemoryMB = 16000 })
	}
	if x := find(t, Run(in), TestReportedInventory); x.Result != Failed {
		t.Fatalf("declared 32768, reported 16000: %+v, want failed", x)
	}
	for _, n := range []string{y21, y22} {
		edit(&in, n, func(h *Host) { h.FromAgent = []string{"memory_mb"} })
	}
	if x := find(t, Run(in), TestReportedInventory); x.Result != Passed || strings.Contains(x.Message, "declares memory_mb") {
		t.Errorf("memory taken from the agent: %+v, want passed", x)
	}
}
