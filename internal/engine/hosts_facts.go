package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// A host's hardware facts may be left out of its configuration: the
// values then come from its node agent's report (hosts_reported.go),
// copied into the host record when it is registered or updated and kept
// current by the agent's reports (ReportHost), so every reader
// (placement, migration, validation) sees one value and a refresh shows
// no diff until the machine itself changes.

// The hardware facts a host's agent can fill, by kayo_host attribute.
const (
	FactProcessorVendor = "processor_vendor"
	FactProcessorModel  = "processor_model"
	FactProcessorCores  = "processor_cores"
	FactMemoryMB        = "memory_mb"
	// FactNetworkAdapters: the reported interfaces become the host's
	// adapters (reportedAdapters).
	FactNetworkAdapters = "network_adapters"
)

// AgentFacts lists them in schema order.
var AgentFacts = []string{FactProcessorVendor, FactProcessorModel, FactProcessorCores, FactMemoryMB, FactNetworkAdapters}

// checkFromAgent returns s.FromAgent as a set; an unknown fact is an
// error.
func checkFromAgent(s HostSpec) (map[string]bool, error) {
	out := map[string]bool{}
	for _, f := range s.FromAgent {
		if !slices.Contains(AgentFacts, f) {
			return nil, invalid("from_agent", f, strings.Join(AgentFacts, ", "))
		}
		out[f] = true
	}
	return out, nil
}

// checkFacts checks the declared hardware facts (those not from the agent).
func checkFacts(s HostSpec, fromAgent map[string]bool) error {
	if !fromAgent[FactProcessorVendor] && !slices.Contains(ProcessorVendors, s.ProcessorVendor) {
		return invalid(FactProcessorVendor, s.ProcessorVendor, strings.Join(ProcessorVendors, ", "))
	}
	if !fromAgent[FactProcessorCores] && (s.ProcessorCores < 1 || s.ProcessorCores > 1024) {
		return invalid(FactProcessorCores, fmt.Sprint(s.ProcessorCores), "1 to 1024")
	}
	if !fromAgent[FactMemoryMB] && (s.MemoryMB < 512 || s.MemoryMB > 64<<20) {
		return invalid(FactMemoryMB, fmt.Sprint(s.MemoryMB), "512 to 67108864 (64 TiB)")
	}
	return nil
}

// setFact copies fact f of r into s; nets are the networks of the other
// nodes of the host's cluster (reportedAdapters).
func setFact(s *HostSpec, f string, r hostfacts.Report, nets []netip.Prefix) {
	switch f {
	case FactProcessorVendor:
		s.ProcessorVendor = r.ProcessorVendor
	case FactProcessorModel:
		s.ProcessorModel = r.ProcessorModel
	case FactProcessorCores:
		s.ProcessorCores = r.ProcessorCores
	case FactMemoryMB:
		s.MemoryMB = r.MemoryMB
	case FactNetworkAdapters:
		s.Adapters = reportedAdapters(r, nets)
	}
}

// copyFact copies fact f of from into s.
func copyFact(s *HostSpec, f string, from HostSpec) {
	if f == FactNetworkAdapters {
		s.Adapters = slices.Clone(from.Adapters)
		return
	}
	r := hostfacts.Report{ProcessorVendor: from.ProcessorVendor, ProcessorModel: from.ProcessorModel,
		ProcessorCores: from.ProcessorCores, MemoryMB: from.MemoryMB}
	setFact(s, f, r, nil)
}

// reportedAdapters are the host adapters a report's interfaces make: one
// per interface with a usable address (validate.UsableAddress), named as
// the interface, in the address's subnet. Of several addresses the first
// in one of nets (the cluster's networks, so the adapter matches the
// other nodes' by subnet) is taken, else the first IPv4, else the first.
func reportedAdapters(r hostfacts.Report, nets []netip.Prefix) []Adapter {
	var out []Adapter
	for _, a := range r.Adapters {
		var best netip.Prefix
		rank := 0
		for _, s := range a.Addresses {
			p, err := netip.ParsePrefix(s)
			if err != nil || !validate.UsableAddress(p.Addr()) {
				continue
			}
			k := 1
			switch {
			case slices.Contains(nets, p.Masked()):
				k = 3
			case p.Addr().Is4():
				k = 2
			}
			if k > rank {
				best, rank = p, k
			}
		}
		if rank > 0 {
			out = append(out, Adapter{Name: a.Name, Network: best.Masked().String(), Address: best.Addr().String()})
		}
	}
	return out
}

// clusterNetworks are the networks the adapters of cluster's nodes other
// than node are in; none when cluster is "".
func (e *Engine) clusterNetworks(ctx context.Context, cluster, node string) ([]netip.Prefix, error) {
	if cluster == "" {
		return nil, nil
	}
	c, err := e.clusterHead(ctx, cluster)
	if err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, n := range c.Nodes {
		if n == node {
			continue
		}
		h, err := e.GetHost(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, a := range h.Adapters {
			if p, err := netip.ParsePrefix(a.Network); err == nil && !slices.Contains(out, p.Masked()) {
				out = append(out, p.Masked())
			}
		}
	}
	return out, nil
}

// fillFromAgent fills s's FromAgent facts from the host's agent's usable
// report (of any age: the machine's facts outlive a stopped agent), else,
// when the host already took that fact from its agent, keeps old's value.
// Without either it is an error naming the attribute: it needs a value
// or a reporting agent. A reported value kayo_host does not allow is an
// error too (declare it).
func (e *Engine) fillFromAgent(ctx context.Context, s HostSpec, old *HostSpec, cluster string) (HostSpec, error) {
	if len(s.FromAgent) == 0 {
		return s, nil
	}
	var nets []netip.Prefix
	if slices.Contains(s.FromAgent, FactNetworkAdapters) {
		var err error
		if nets, err = e.clusterNetworks(ctx, cluster, s.Name); err != nil {
			return s, err
		}
	}
	r, _, err := e.HostReport(ctx, s.Name)
	why := "no node agent has reported its machine"
	switch {
	case errors.Is(err, ErrBadReport):
		why = "its node agent's report is unusable (" + strings.TrimPrefix(err.Error(), ErrBadReport.Error()+": ") + ")"
	case err != nil && !errors.Is(err, ErrNotFound):
		return s, err
	}
	for _, f := range s.FromAgent {
		switch {
		case err == nil && f == FactNetworkAdapters:
			if setFact(&s, f, r, nets); len(s.Adapters) == 0 {
				return s, &InputError{Attribute: f, Detail: fmt.Sprintf(
					"host %q declares no %s and its node agent reports no network interface with a usable address (%s): declare %s",
					s.Name, f, reportedInterfaces(r), f)}
			}
		case err == nil:
			setFact(&s, f, r, nets)
			one := HostSpec{FromAgent: nil}
			setFact(&one, f, r, nil)
			if cerr := checkFacts(one, otherFacts(f)); cerr != nil {
				var ie *InputError
				if errors.As(cerr, &ie) {
					return s, &InputError{Attribute: f, Value: ie.Value, Detail: fmt.Sprintf(
						"host %q's agent reports %q, which kayo_host does not allow (%s): declare %s", s.Name, ie.Value, ie.Allowed, f)}
				}
				return s, cerr
			}
		case old != nil && slices.Contains(old.FromAgent, f):
			copyFact(&s, f, *old) // the last reported value
		default:
			return s, &InputError{Attribute: f, Detail: fmt.Sprintf(
				"host %q declares no %s and %s: set %s, or run the host's agent (`kayoctl agent --node %s`) so it reports the value, then apply again",
				s.Name, f, why, f, s.Name)}
		}
	}
	return s, nil
}

// otherFacts is every agent fact but f, to check f alone.
func otherFacts(f string) map[string]bool {
	out := map[string]bool{}
	for _, x := range AgentFacts {
		out[x] = x != f
	}
	return out
}

// reportedInterfaces lists r's interfaces and addresses for a message.
func reportedInterfaces(r hostfacts.Report) string {
	if len(r.Adapters) == 0 {
		return "it reports no interface"
	}
	var out []string
	for _, a := range r.Adapters {
		out = append(out, strings.TrimSpace(a.Name+" "+strings.Join(a.Addresses, " ")))
	}
	return "it reports " + strings.Join(out, ", ")
}

// reportedFactsOp is the host record updated with r's values of the facts
// it takes from its agent, when one differs (the machine changed); nil
// when the host is not registered or nothing differs. nets are the
// networks of the other nodes of its cluster.
func reportedFactsOp(h Host, found bool, r hostfacts.Report, nets []netip.Prefix) (Host, bool) {
	if !found || len(h.FromAgent) == 0 {
		return h, false
	}
	next := h
	for _, f := range h.FromAgent {
		setFact(&next.HostSpec, f, r, nets)
	}
	if slices.Contains(h.FromAgent, FactNetworkAdapters) && len(next.Adapters) == 0 {
		next.Adapters = h.Adapters // an interface-less report: the next update says so
	}
	if checkFacts(next.HostSpec, otherFacts("")) != nil {
		return h, false // a value kayo_host does not allow: the next update says so
	}
	changed := next.ProcessorVendor != h.ProcessorVendor || next.ProcessorModel != h.ProcessorModel ||
		next.ProcessorCores != h.ProcessorCores || next.MemoryMB != h.MemoryMB || !slices.Equal(next.Adapters, h.Adapters)
	return next, changed
}
