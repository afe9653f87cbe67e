package engine

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/validate"
	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
	"github.com/kayo-labs/terraform-provider-kayo/internal/netprobe"
)

func put(t *testing.T, e *Engine, key string, v any) {
	t.Helper()
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.st.Commit(context.Background(), nil, []store.Op{store.Put(key, b)}); err != nil {
		t.Fatal(err)
	}
}

func testOf(t *testing.T, tests []validate.Test, name string) validate.Test {
	t.Helper()
	for _, x := range tests {
		if x.Name == name {
			return x
		}
	}
	t.Fatalf("no %q test in %+v", name, tests)
	return validate.Test{}
}

// An agent's record that is garbage (unreadable, an old version, out of
// range) or missing is never data: validation names the node as not
// reporting, with why, and the tests that need it do not pass.
func TestGarbageReportsAreNamedNotUsed(t *testing.T) {
	ctx := context.Background()
	good := hostfacts.Report{Version: hostfacts.ReportVersion, ProcessorVendor: "intel", ProcessorModel: "Xeon E5440",
		ProcessorCores: 8, MemoryMB: 31900, CPUFlags: []string{"sse4_2"}, ReportedAt: fixedNow}
	old := good
	old.Version = 0
	huge := good
	huge.MemoryMB = -5
	for _, c := range []struct {
		name   string
		record any // nil: nothing at all
		want   string
	}{
		{"unreadable", []byte("{not json"), `host "Y-22-2k8x64" is not reporting (report: the record is unreadable`},
		{"old version", old, `host "Y-22-2k8x64" is not reporting (report: report version 0, this kayoctl reads version 1`},
		{"out of range", huge, `host "Y-22-2k8x64" is not reporting (report: memory_mb -5 is out of range`},
		{"nothing", nil, `"Y-22-2k8x64" reports no`}, // "nothing", "no CPU flags"
	} {
		e, err := openT(Config{Store: memstore.New(), DataDir: t.TempDir(), Clock: func() time.Time { return fixedNow }})
		if err != nil {
			t.Fatal(err)
		}
		mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
		put(t, e, hostReportKey(y21), good)
		if c.record != nil {
			put(t, e, hostReportKey(y22), c.record)
		}
		check, err := e.ValidateCluster(ctx, seedCluster("HVCLUSTER", y21, y22), false)
		if err != nil {
			t.Fatalf("%s: validation must not fail on an agent's garbage: %v", c.name, err)
		}
		for _, name := range []string{validate.TestReportedInventory, validate.TestProcessorCompat} {
			x := testOf(t, check.Report.Tests, name)
			if x.Result == validate.Passed || !strings.Contains(x.Message, c.want) {
				t.Errorf("%s: %s = %+v, want not passed, saying %s", c.name, name, x, c.want)
			}
			if len(x.Agents) != 1 || x.Agents[0].Node != y21 || !x.Agents[0].At.Equal(fixedNow) {
				t.Errorf("%s: %s used %+v, want Y-21's report of %s only", c.name, name, x.Agents, fixedNow)
			}
		}
		if c.record != nil {
			if _, _, err := e.HostReport(ctx, y22); err == nil {
				t.Errorf("%s: HostReport read garbage without an error", c.name)
			}
		}
		_ = e.Close()
	}
}

// Probe rounds: garbage names the node; a fresh round's clock offset is
// the node's, and one beyond the bounds warns or fails naming node and
// offset; HostClock shows it; the report says when it was made.
func TestProbeRoundsClockAndGarbage(t *testing.T) {
	ctx := context.Background()
	e, err := openT(Config{Store: memstore.New(), DataDir: t.TempDir(), Clock: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
	if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22)); err != nil {
		t.Fatal(err)
	}
	c, _ := e.GetCluster(ctx, "HVCLUSTER")
	if !c.ValidatedAt.Equal(fixedNow) {
		t.Errorf("validated_at %s, want %s", c.ValidatedAt, fixedNow)
	}
	round := func(to string, off time.Duration) ProbeRound {
		var rs []netprobe.Result
		for _, n := range []string{"192.0.2.0/24", "10.10.10.0/24"} {
			rs = append(rs, netprobe.Result{To: to, Network: n, Address: "192.0.2.1", Reachable: true, RTT: time.Millisecond})
		}
		return ProbeRound{At: fixedNow.Add(-time.Second), Results: rs, ClockOffset: &off}
	}
	put(t, e, probeKey("HVCLUSTER", y21), round(y22, 0))
	put(t, e, probeKey("HVCLUSTER", y22), []byte(`{"at": 12}`))
	check, err := e.ValidateCluster(ctx, c.ClusterSpec, false)
	if err != nil {
		t.Fatal(err)
	}
	if !check.At.Equal(fixedNow) {
		t.Errorf("report made at %s, want %s", check.At, fixedNow)
	}
	for _, name := range []string{validate.TestNetworkCommunication, validate.TestClock} {
		x := testOf(t, check.Report.Tests, name)
		if x.Result == validate.Passed || !strings.Contains(x.Message, `host "Y-22-2k8x64" is not reporting (probes: the probe record is unreadable`) {
			t.Errorf("garbage probe round: %s = %+v", name, x)
		}
	}
	for _, c := range []struct {
		off  time.Duration
		res  validate.Result
		want string
	}{
		{20 * time.Millisecond, validate.Passed, `+20 ms`},
		{-12 * time.Second, validate.Warning, `host "Y-22-2k8x64"'s clock is -12000 ms off the cluster's`},
		{6 * time.Minute, validate.Failed, `host "Y-22-2k8x64"'s clock is +360000 ms off the cluster's`},
	} {
		put(t, e, probeKey("HVCLUSTER", y22), round(y21, c.off))
		check, err := e.ValidateCluster(ctx, seedCluster("HVCLUSTER", y21, y22), false)
		if err != nil {
			t.Fatal(err)
		}
		x := testOf(t, check.Report.Tests, validate.TestClock)
		if x.Result != c.res || !strings.Contains(x.Message, c.want) || len(x.Agents) != 2 || !x.Agents[1].At.Equal(fixedNow.Add(-time.Second)) {
			t.Errorf("offset %s: %+v, want %s saying %s, with both agents and when they measured", c.off, x, c.res, c.want)
		}
		got, ok, err := e.HostClock(ctx, y22)
		if err != nil || !ok || got.Offset != c.off {
			t.Errorf("HostClock(Y-22) = %+v %v %v, want %s", got, ok, err, c.off)
		}
	}
	// A round older than ProbeMaxAge: the clock is unknown, not kept.
	r := round(y21, time.Hour)
	r.At = fixedNow.Add(-2 * ProbeMaxAge)
	put(t, e, probeKey("HVCLUSTER", y22), r)
	if _, ok, _ := e.HostClock(ctx, y22); ok {
		t.Error("a stopped agent's clock offset is still shown")
	}
}

// The agents' reported QEMU reaches validation: a qemu cluster whose node
// reports none fails naming it.
func TestReportedHypervisorInValidation(t *testing.T) {
	ctx := context.Background()
	e, err := openT(Config{Store: memstore.New(), DataDir: t.TempDir(), Clock: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
	r := hostfacts.Report{Version: hostfacts.ReportVersion, ProcessorVendor: "intel", ProcessorCores: 8, MemoryMB: 32000,
		ReportedAt: fixedNow, Hypervisor: &hostfacts.Hypervisor{Name: "qemu", Version: "7.2.15", Accel: "tcg"}}
	put(t, e, hostReportKey(y21), r)
	r.Hypervisor = nil
	put(t, e, hostReportKey(y22), r)
	s := seedCluster("HVCLUSTER", y21, y22)
	s.Hypervisor = HypervisorQEMU
	check, err := e.ValidateCluster(ctx, s, false)
	if err != nil {
		t.Fatal(err)
	}
	if x := testOf(t, check.Report.Tests, validate.TestHypervisor); x.Result != validate.Failed || !strings.Contains(x.Message, `host "Y-22-2k8x64" has no QEMU`) {
		t.Errorf("a qemu cluster node without QEMU: %+v", x)
	}
}
