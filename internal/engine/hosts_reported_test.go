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
	e, err := Open(Config{Store: memstore.New(), DataDir: t.TempDir(), Clock: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.ReportHost(ctx, y21, hostfacts.Report{ReportedAt: fixedNow}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("report of an unregistered host: %v, want ErrNotFound", err)
	}
	mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
	good := func(at time.Time) hostfacts.Report {
		h, _ := e.GetHost(ctx, y21)
		return hostfacts.Report{ProcessorVendor: h.ProcessorVendor, ProcessorCores: h.ProcessorCores,
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
			if x.Result != validate.Warning || !strings.Contains(x.Message, `"Y-22-2k8x64" reports nothing`) {
				t.Errorf("stale report: %+v, want a warning that Y-22 reports nothing", x)
			}
		}
	}
	if !found {
		t.Errorf("no %q test in %+v", validate.TestReportedInventory, c.Validation)
	}
}
