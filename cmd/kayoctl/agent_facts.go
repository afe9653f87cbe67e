package main

import (
	"context"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// factsInterval is how often an agent re-reports its machine: well within
// engine.ReportMaxAge, after which a report no longer counts.
const factsInterval = time.Minute

// factsReporter writes the agent's host report (hostfacts) into the
// cluster database once the host is registered, then every factsInterval.
// Its zero value reports nothing (--report-facts=false).
type factsReporter struct {
	e       *engine.Engine
	node    string
	logf    func(string, ...any)
	last    time.Time
	lastErr string
}

func (f *factsReporter) tick(ctx context.Context) {
	if f.e == nil || time.Since(f.last) < factsInterval {
		return
	}
	r, err := hostfacts.Collect(ctx, hostfacts.Options{})
	r.Version = hostfacts.ReportVersion
	if err == nil {
		err = f.e.ReportHost(ctx, f.node, r)
	}
	if err != nil {
		if err.Error() != f.lastErr && ctx.Err() == nil {
			f.logf("reporting this machine: %v", err)
			f.lastErr = err.Error()
		}
		return
	}
	if f.last.IsZero() {
		f.logf("reported this machine: %s, %d cores, %d MB", r.ProcessorModel, r.ProcessorCores, r.MemoryMB)
	}
	f.last, f.lastErr = time.Now(), ""
}
