package validate

import (
	"fmt"
	"sort"
	"time"
)

// TestClock is the System Configuration test of the nodes' clocks.
const TestClock = "Validate Clock Synchronization"

// Clock bounds: beyond ClockWarn a node's logs and leases disagree with
// the others' (warning); beyond ClockFail Kerberos, which the Windows
// Server 2008 cluster service authenticates its nodes with, refuses the
// node's tickets (5 minutes is its default tolerance), so it fails.
const (
	ClockWarn = time.Second
	ClockFail = 5 * time.Minute
)

// Clock is one node's clock offset against the cluster and when its
// agent measured it.
type Clock struct {
	Offset time.Duration
	At     time.Time
}

// FormatOffset renders an offset as signed milliseconds ("+10003 ms").
func FormatOffset(d time.Duration) string { return fmt.Sprintf("%+d ms", d.Milliseconds()) }

func clockTest(e *env) Test {
	if len(e.nodes) == 0 {
		return test(system, TestClock, AttrNodes, Passed, noRegisteredNodeCheck)
	}
	var fails, warns, silent []string
	var agents []AgentData
	var worst time.Duration
	worstNode := ""
	for _, n := range e.nodes {
		c, ok := e.in.Clocks[n.name]
		if !ok {
			silent = append(silent, n.name)
			continue
		}
		agents = append(agents, AgentData{Node: n.name, At: c.At})
		abs := c.Offset.Abs()
		switch {
		case abs > ClockFail:
			fails = append(fails, fmt.Sprintf("host %q's clock is %s off the cluster's", n.name, FormatOffset(c.Offset)))
		case abs > ClockWarn:
			warns = append(warns, fmt.Sprintf("host %q's clock is %s off the cluster's", n.name, FormatOffset(c.Offset)))
		}
		if worstNode == "" || abs > worst.Abs() {
			worst, worstNode = c.Offset, n.name
		}
	}
	bad := e.notProbing()
	if len(agents) == 0 && len(bad) == 0 {
		return declared(test(system, TestClock, AttrNodes, Passed,
			"computed from declared facts: no node agent measures the clocks (the embedded lab's nodes share this machine's clock)"))
	}
	var silentClauses []string
	if len(silent) > 0 {
		silentClauses = append(silentClauses, bad...)
		if rest := without(silent, e.in.NotProbing); len(rest) > 0 {
			silentClauses = append(silentClauses, fmt.Sprintf("%s %s no clock offset (no node agent probing, or no peer answered)",
				quotedNames(rest), oneOrMany(len(rest), "has", "have")))
		}
	}
	t := func(res Result, msg string) Test {
		x := probed(test(system, TestClock, AttrNodes, res, msg))
		x.Agents = agents
		return x
	}
	switch {
	case len(fails) > 0:
		return t(Failed, problems(append(append(fails, warns...), silentClauses...))+
			fmt.Sprintf("; a node's clock must be within %s of the cluster's (Kerberos refuses more), within %s to pass: synchronise it (NTP)", ClockFail, ClockWarn))
	case len(warns) > 0 || len(silentClauses) > 0:
		msg := problems(append(warns, silentClauses...))
		if len(warns) > 0 {
			msg += fmt.Sprintf("; clocks within %s of the cluster's pass: synchronise it (NTP)", ClockWarn)
		} else {
			msg += "; those clocks are unchecked"
		}
		return t(Warning, msg)
	}
	return t(Passed, fmt.Sprintf("the clocks of %s agree with the cluster's within %s (the farthest: host %q, %s)",
		plural(len(e.nodes), "node"), ClockWarn, worstNode, FormatOffset(worst)))
}

// without returns names not in m.
func without(names []string, m map[string]string) []string {
	var out []string
	for _, n := range names {
		if _, ok := m[n]; !ok {
			out = append(out, n)
		}
	}
	return out
}

// notReporting and notProbing are one clause per node whose agent's
// report or probe round is unusable, naming it and why, by name.
func (e *env) notReporting() []string { return e.unusable(e.in.NotReporting, "report") }

func (e *env) notProbing() []string { return e.unusable(e.in.NotProbing, "probes") }

func (e *env) unusable(m map[string]string, what string) []string {
	var out []string
	for _, n := range e.nodes {
		if why, ok := m[n.name]; ok {
			out = append(out, fmt.Sprintf("host %q is not reporting (%s: %s)", n.name, what, why))
		}
	}
	sort.Strings(out)
	return out
}
