package engine

import (
	"context"
	"fmt"
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
	_, err := e.st.Commit(ctx, nil, []store.Op{putJSON(hostReportKey(node), r)})
	return err
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
			ProcessorCores: r.ProcessorCores, CPUFlags: r.CPUFlags, MemoryMB: r.MemoryMB, At: r.ReportedAt}
		in.Hosts[name] = h
	}
	return in
}
