package nodeagent

import (
	"context"
	"path/filepath"
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
	luns    []string // --lun: LUN paths to report besides the scanned ones
}

func (f *factsReporter) tick(ctx context.Context) {
	if f.e == nil || time.Since(f.last) < factsInterval {
		return
	}
	r, err := hostfacts.Collect(ctx, hostfacts.Options{})
	r.Version = hostfacts.ReportVersion
	if err == nil {
		r.LUNs, err = f.scanLUNs(ctx)
	}
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

// scanLUNs lists the LUNs this host sees: its block devices, the embedded
// SAN's images, the --lun paths and the paths its cluster's volumes name
// for this node (a file-backed LUN is found no other way).
func (f *factsReporter) scanLUNs(ctx context.Context) ([]hostfacts.LUN, error) {
	o := hostfacts.LUNOptions{Paths: f.luns}
	if dir := f.e.DataDir(); dir != "" {
		o.SANDir = filepath.Join(dir, engine.SANDir)
	}
	named, err := f.e.NodeLUNPaths(ctx, f.node)
	if err != nil {
		return nil, err
	}
	o.Paths = append(o.Paths, named...)
	return hostfacts.ScanLUNs(o)
}
