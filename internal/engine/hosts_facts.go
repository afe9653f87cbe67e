package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

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
)

// AgentFacts lists them in schema order.
var AgentFacts = []string{FactProcessorVendor, FactProcessorModel, FactProcessorCores, FactMemoryMB}

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

// setFact copies fact f of r into s.
func setFact(s *HostSpec, f string, r hostfacts.Report) {
	switch f {
	case FactProcessorVendor:
		s.ProcessorVendor = r.ProcessorVendor
	case FactProcessorModel:
		s.ProcessorModel = r.ProcessorModel
	case FactProcessorCores:
		s.ProcessorCores = r.ProcessorCores
	case FactMemoryMB:
		s.MemoryMB = r.MemoryMB
	}
}

// copyFact copies fact f of from into s.
func copyFact(s *HostSpec, f string, from HostSpec) {
	r := hostfacts.Report{ProcessorVendor: from.ProcessorVendor, ProcessorModel: from.ProcessorModel,
		ProcessorCores: from.ProcessorCores, MemoryMB: from.MemoryMB}
	setFact(s, f, r)
}

// fillFromAgent fills s's FromAgent facts from the host's agent's usable
// report (of any age: the machine's facts outlive a stopped agent), else,
// when the host already took that fact from its agent, keeps old's value.
// Without either it is an error naming the attribute: it needs a value
// or a reporting agent. A reported value kayo_host does not allow is an
// error too (declare it).
func (e *Engine) fillFromAgent(ctx context.Context, s HostSpec, old *HostSpec) (HostSpec, error) {
	if len(s.FromAgent) == 0 {
		return s, nil
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
		case err == nil:
			setFact(&s, f, r)
			one := HostSpec{FromAgent: nil}
			setFact(&one, f, r)
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

// reportedFactsOp is the host record updated with r's values of the facts
// it takes from its agent, when one differs (the machine changed); nil
// when the host is not registered or nothing differs.
func reportedFactsOp(h Host, found bool, r hostfacts.Report) (Host, bool) {
	if !found || len(h.FromAgent) == 0 {
		return h, false
	}
	next := h
	for _, f := range h.FromAgent {
		setFact(&next.HostSpec, f, r)
	}
	if checkFacts(next.HostSpec, otherFacts("")) != nil {
		return h, false // a value kayo_host does not allow: the next update says so
	}
	changed := next.ProcessorVendor != h.ProcessorVendor || next.ProcessorModel != h.ProcessorModel ||
		next.ProcessorCores != h.ProcessorCores || next.MemoryMB != h.MemoryMB
	return next, changed
}
