package engine

import (
	"context"
	"strings"
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

// ReportHost records node's report; the host must be registered.
func (e *Engine) ReportHost(ctx context.Context, node string, r hostfacts.Report) error {
	h, err := e.GetHost(ctx, node)
	if err != nil {
		return err
	}
	_, err = e.st.Commit(ctx, []store.Cmp{store.At(hostKey(node), h.Revision)}, []store.Op{putJSON(hostReportKey(node), r)})
	return err
}

// HostReport returns node's report, ErrNotFound when its agent never
// reported; stale says it is older than ReportMaxAge.
func (e *Engine) HostReport(ctx context.Context, node string) (r hostfacts.Report, stale bool, err error) {
	if _, err = getJSON(ctx, e.st, hostReportKey(node), &r); err != nil {
		return r, false, err
	}
	return r, e.now().Sub(r.ReportedAt) > ReportMaxAge, nil
}

// freshReports returns the reports no older than ReportMaxAge, by host.
func (e *Engine) freshReports(ctx context.Context) (map[string]hostfacts.Report, error) {
	kvs, _, err := e.st.List(ctx, hostReportsPrefix)
	if err != nil {
		return nil, err
	}
	out := map[string]hostfacts.Report{}
	for _, kv := range kvs {
		var r hostfacts.Report
		if err := decode(kv, &r); err != nil {
			return nil, err
		}
		if e.now().Sub(r.ReportedAt) <= ReportMaxAge {
			out[strings.TrimPrefix(kv.Key, hostReportsPrefix)] = r
		}
	}
	return out, nil
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
			ProcessorCores: r.ProcessorCores, CPUFlags: r.CPUFlags, MemoryMB: r.MemoryMB}
		in.Hosts[name] = h
	}
	return in
}
