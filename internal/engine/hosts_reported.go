package engine

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// What node agents report of their machines (kayoctl agent, hostfacts):
// one record per host, rewritten by its agent. Validation compares the
// declared facts with it; kayo_host shows it as `reported`.

// ReportMaxAge is how old a host report may be and still count: an agent
// re-reports every minute, so an older one is from an agent that stopped.
const ReportMaxAge = 10 * time.Minute

// ReportHost records node's report. The host need not be registered yet:
// its agent runs before Terraform registers it, and a kayo_host that
// leaves its hardware facts out takes them from this report. A report
// that fails hostfacts.Report.Check is refused (ErrBadReport).
func (e *Engine) ReportHost(ctx context.Context, node string, r hostfacts.Report) error {
	if err := checkHostName(node); err != nil {
		return err
	}
	if err := r.Check(); err != nil {
		return fmt.Errorf("host %q: %w: %v", node, ErrBadReport, err)
	}
	// A registered host that takes facts from its agent gets the new
	// values in the same commit (hosts_facts.go).
	return e.retry(ctx, func() error {
		h, err := e.GetHost(ctx, node)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		found := err == nil
		var nets []netip.Prefix
		if found && slices.Contains(h.FromAgent, FactNetworkAdapters) {
			if nets, err = e.clusterNetworks(ctx, h.Cluster, node); err != nil {
				return err
			}
		}
		var cmps []store.Cmp
		ops := []store.Op{putJSON(hostReportKey(node), r)}
		if next, changed := reportedFactsOp(h, found, r, nets); changed {
			cmps = append(cmps, store.At(hostKey(node), h.Revision))
			ops = append(ops, putJSON(hostKey(node), next), e.eventOp(Event{Kind: EventHostUpdated, Cluster: h.Cluster,
				Subject: node, Detail: map[string]string{"facts": "as its agent reports"}}))
		}
		_, err = e.st.Commit(ctx, cmps, ops)
		return err
	})
}

// HostReport returns node's report, ErrNotFound when its agent never
// reported, ErrBadReport when the record is unusable; stale says it is
// older than ReportMaxAge.
func (e *Engine) HostReport(ctx context.Context, node string) (r hostfacts.Report, stale bool, err error) {
	kv, err := e.st.Get(ctx, hostReportKey(node))
	if err != nil {
		return r, false, err
	}
	if r, err = readReport(kv); err != nil {
		return r, false, err
	}
	return r, e.now().Sub(r.ReportedAt) > ReportMaxAge, nil
}

// forgetHostReport drops a removed host's report.
func forgetHostReport(node string) store.Op { return store.Del(hostReportKey(node)) }

// withReports gives the validator each host's fresh report.
func withReports(in validate.Input, reports map[string]hostfacts.Report) validate.Input {
	for name, h := range in.Hosts {
		r, ok := reports[name]
		if !ok {
			continue
		}
		h.Reported = &validate.Reported{ProcessorVendor: r.ProcessorVendor, ProcessorModel: r.ProcessorModel,
			ProcessorCores: r.ProcessorCores, CPUFlags: r.CPUFlags, MemoryMB: r.MemoryMB, At: r.ReportedAt,
			Hypervisor: hypervisorReport(r.Hypervisor)}
		for _, a := range r.Adapters {
			ra := validate.ReportedAdapter{Name: a.Name, Up: a.Up}
			for _, s := range a.Addresses {
				if p, err := netip.ParsePrefix(s); err == nil {
					ra.Addresses = append(ra.Addresses, p)
				}
			}
			h.Reported.Adapters = append(h.Reported.Adapters, ra)
		}
		in.Hosts[name] = h
	}
	return in
}
