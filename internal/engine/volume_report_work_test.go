package engine

import (
	"context"
	"testing"
	"time"
)

// The lab's reports are node work: the process that asks for them (the
// provider's configure, `kayoctl vm list`) opens no device itself; the
// node's executor (here an agent in another engine) looks at the LUN and
// records what every node of the volume sees.
func TestReportLabVolumesByTheNodesExecutor(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	_, vol := workEnv(t, dir)
	m := &Metrics{}
	caller, err := openT(Config{DataDir: dir, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caller.Close() })
	startWorkAgent(t, openWorkEngine(t, dir), y21)
	start := caller.now()
	if err := caller.ReportLabVolumes(ctx); err != nil {
		t.Fatal(err)
	}
	if n := m.DevicesOpened(); n != 0 {
		t.Errorf("the caller opened %d devices to report the lab's volumes", n)
	}
	reps, err := caller.VolumeReports(ctx, vol.ID)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range reps {
		if !r.ReportedAt.Before(start.Add(-time.Millisecond)) && r.healthy() && r.TotalBytes > 0 && r.SlotState != "free" {
			seen[r.Node] = true
		}
	}
	if !seen[y21] || !seen[y22] {
		t.Errorf("fresh healthy reports of %v, want both nodes: %+v", seen, reps)
	}
	noWorkRecords(t, caller)
}
