package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// A node agent's report takes part in validation: a declared memory the
// report contradicts fails formation naming both values; a stale report
// (its agent stopped) is not used; without reports the test says it was
// computed from declared facts.
func TestHostReportsInValidation(t *testing.T) {
	ctx := context.Background()
	e, err := openT(Config{Store: memstore.New(), DataDir: t.TempDir(), Clock: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// An agent reports before its host is registered (a kayo_host may
	// take its facts from the report); garbage is refused.
	early := hostfacts.Report{Version: hostfacts.ReportVersion, ProcessorVendor: "intel", ProcessorCores: 8, MemoryMB: 32000, ReportedAt: fixedNow}
	if err := e.ReportHost(ctx, y21, early); err != nil {
		t.Fatalf("report of a host not registered yet: %v", err)
	}
	if err := e.ReportHost(ctx, y21, hostfacts.Report{ReportedAt: fixedNow}); !errors.Is(err, ErrBadReport) {
		t.Fatalf("a report of version 0 with no facts: %v, want ErrBadReport", err)
	}
	mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
	good := func(at time.Time) hostfacts.Report {
		h, _ := e.GetHost(ctx, y21)
		return hostfacts.Report{Version: hostfacts.ReportVersion, ProcessorVendor: h.ProcessorVendor, ProcessorCores: h.ProcessorCores,
			MemoryMB: h.MemoryMB, ReportedAt: at}
	}
	bad := good(fixedNow)
	bad.MemoryMB = 16000
	if err := e.ReportHost(ctx, y21, good(fixedNow)); err != nil {
		t.Fatal(err)
	}
	if err := e.ReportHost(ctx, y22, bad); err != nil {
		t.Fatal(err)
	}
	_, err = e.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22))
	var ve *ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), `host "Y-22-2k8x64" declares memory_mb 32768 but its agent reports 16000`) {
		t.Fatalf("formation with a contradicting report: %v, want a validation failure naming the host and both values", err)
	}
	if _, stale, err := e.HostReport(ctx, y22); err != nil || stale {
		t.Fatalf("HostReport: stale %v, %v", stale, err)
	}
	// The same report, but from an agent that stopped long ago: unused.
	bad.ReportedAt = fixedNow.Add(-2 * ReportMaxAge)
	if err := e.ReportHost(ctx, y22, bad); err != nil {
		t.Fatal(err)
	}
	c, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22))
	if err != nil {
		t.Fatalf("formation with a stale report: %v", err)
	}
	found := false
	for _, x := range c.Validation {
		if x.Name == validate.TestReportedInventory {
			found = true
			if x.Result != validate.Warning || !strings.Contains(x.Message, `host "Y-22-2k8x64" is not reporting (report: its agent last reported at 2026`) {
				t.Errorf("stale report: %+v, want a warning that Y-22 is not reporting since then", x)
			}
		}
	}
	if !found {
		t.Errorf("no %q test in %+v", validate.TestReportedInventory, c.Validation)
	}
}
