package validate

import (
	"fmt"
	"net/netip"
	"sort"
	"time"
)

// Probe is one agent's probe of another node's address on a cluster
// network (internal/netprobe).
type Probe struct {
	From, To  string
	Network   netip.Prefix
	Address   netip.Addr
	Reachable bool
	RTT       time.Duration
	Error     string
}

// probedCommunicationTest judges Network Communication from the agents'
// probes: every probing node must reach every other node on every
// cluster network. A pair without a result is never a pass.
func probedCommunicationTest(e *env) Test {
	type key struct {
		from, to string
		net      netip.Prefix
	}
	got := map[key]Probe{}
	for _, p := range e.in.Probes {
		got[key{p.From, p.To, p.Network.Masked()}] = p
	}
	var failed, missing, silent []string
	var agents []AgentData
	var probes []ProbeData
	var worst time.Duration
	pairs := 0
	for _, a := range e.nodes {
		if !e.in.Probing[a.name] {
			if _, bad := e.in.NotProbing[a.name]; !bad {
				silent = append(silent, a.name)
			}
			continue
		}
		agents = append(agents, AgentData{Node: a.name, At: e.in.ProbedAt[a.name]})
		for _, b := range e.nodes {
			if a.name == b.name {
				continue
			}
			for _, cn := range e.networks {
				p, ok := got[key{a.name, b.name, cn.prefix}]
				if ok {
					probes = append(probes, ProbeData{From: a.name, To: b.name, Network: cn.prefix.String(), Reachable: p.Reachable, RTT: p.RTT})
				}
				switch {
				case !ok:
					missing = append(missing, fmt.Sprintf("%q to %q on %s", a.name, b.name, cn))
				case !p.Reachable:
					failed = append(failed, fmt.Sprintf("%q cannot reach %q on network %s (address %s: %s)", a.name, b.name, cn, p.Address, p.Error))
				default:
					pairs++
					worst = max(worst, p.RTT)
				}
			}
		}
	}
	sort.Strings(silent)
	bad := e.notProbing()
	t := func(res Result, msg string) Test {
		x := probed(test(network, TestNetworkCommunication, AttrNodes, res, msg))
		x.Agents, x.Probes = agents, probes
		return x
	}
	switch {
	case len(failed) > 0:
		return t(Failed, problems(failed)+"; every node must reach every other node on every cluster network")
	case len(missing) > 0 || len(silent) > 0 || len(bad) > 0:
		clauses := bad
		if len(silent) > 0 {
			clauses = append(clauses, fmt.Sprintf("%s %s no probes (no node agent probing)", quotedNames(silent), oneOrMany(len(silent), "reports", "report")))
		}
		if len(missing) > 0 {
			clauses = append(clauses, "no probe result from "+joinAnd(missing))
		}
		return t(Warning, problems(clauses)+"; those paths are unchecked")
	}
	return t(Passed, fmt.Sprintf("%s reach each other both ways on %s: %s (%d probes answered, the slowest in %s)",
		plural(len(e.nodes), "node"), plural(len(e.networks), "network"), networkList(e.networks), pairs,
		worst.Round(10*time.Microsecond)))
}
