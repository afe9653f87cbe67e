package bench

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// BenchmarkQEMUMigration live-migrates the test guest (128 MiB and 1 GiB)
// back and forth between two QEMU processes on loopback, two ways,
// interleaved round by round in one run:
//
//	floor  raw QMP (qemutest.Floor): the guest booted once; per move launch
//	       the target with -incoming defer, hand both QEMUs the
//	       connection the agents' handshake authenticated, TLS with a
//	       pre-shared key, the same MigrationParams, `migrate`, poll
//	       query-migrate, kill the source once the target has the state,
//	       `cont`. No database, no agents, no Kayo FS: its disk is a raw
//	       file served by the same NBD server (one per side).
//	kayo   the engine's UpdateVM of owner_node on a qemu cluster (what
//	       terraform apply calls), carried out by two `kayoctl agent`
//	       processes, the disk a dynamic VHD on Kayo FS served over NBD.
//
// Both guests are booted once, fully (counter running), moved twice
// untimed (the first move after boot carries the boot's dirty memory),
// then timed; each round checks the counter continues (same boot). Each
// size runs alone: the other size's guests and agents are gone.
// Metrics: QEMU's total-time and downtime (query-migrate) and the wall
// time of the whole move as its caller sees it (floor: target launch →
// cont returned; kayo: the UpdateVM call).
//
// On 2 TCG cores a move's downtime and total are bimodal (a few ms, or
// tens when a busy thread is descheduled at the stop-and-copy) for both
// sides alike, so a median flips between the modes from run to run; the
// ratio of means is the headline, with a bootstrap 95% interval, and
// medians are printed beside it.
//
//	go test -run '^$' -bench QEMUMigration -benchtime=30x ./bench/
func BenchmarkQEMUMigration(b *testing.B) {
	bin, g, err := qemutest.Prepare(qemutest.RepoRoot())
	if err != nil {
		qemutest.SkipOrFail(b, err)
	}
	results := map[string]*migRow{}
	add := func(key string, total, down, pause, wall int64) {
		r := results[key]
		if r == nil {
			r = &migRow{}
			results[key] = r
		}
		r.m[0] = append(r.m[0], float64(total))
		r.m[1] = append(r.m[1], float64(down))
		r.m[2] = append(r.m[2], float64(pause))
		r.m[3] = append(r.m[3], float64(wall))
	}
	parent := b
	for _, mem := range []int64{128, 1024} {
		var floor *qemutest.Floor
		var kayo *qemuKayo
		b.Run(fmt.Sprintf("mem=%dMiB", mem), func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if floor == nil { // once per size: the sub-benchmark runs with N=1 first
				owner := cleanupOn{b, parent}
				var err error
				if floor, err = qemutest.StartFloor(ctx, bin, g, mem, 1<<30, owner.TempDir()); err != nil {
					b.Fatal(err)
				}
				floor.Key = bytes.Repeat([]byte{0x4b}, 32) // the agents' channel: authenticated, TLS-PSK
				parent.Cleanup(floor.Close)
				kayo = newQEMUKayo(owner, mem, filepath.Dir(g.Kernel))
				for i := 0; i < 2; i++ {
					if _, err := floor.Migrate(ctx); err != nil {
						b.Fatal(err)
					}
					if err := floor.Verify(ctx); err != nil {
						b.Fatal(err)
					}
					kayo.migrate(ctx, b)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				runFloor := func() {
					res, err := floor.Migrate(ctx)
					if err != nil {
						b.Fatal(err)
					}
					add(fmt.Sprintf("%d floor", mem), res.TotalMs, res.DowntimeMs, res.DowntimeMs+res.ResumeMs, res.WallMs)
					if err := floor.Verify(ctx); err != nil {
						b.Fatal(err)
					}
				}
				runKayo := func() {
					lm, resume, wall := kayo.migrate(ctx, b)
					add(fmt.Sprintf("%d kayo", mem), lm.DurationMs, lm.DowntimeMs, lm.DowntimeMs+resume, wall)
				}
				if i%2 == 0 { // alternate who goes first
					runFloor()
					runKayo()
				} else {
					runKayo()
					runFloor()
				}
			}
			b.StopTimer()
			for _, p := range []string{"floor", "kayo"} {
				if r := results[fmt.Sprintf("%d %s", mem, p)]; r != nil {
					for j, name := range migMetrics {
						b.ReportMetric(qmean(r.m[j]), p+"-"+name+"-ms")
					}
				}
			}
		})
		// The next size runs alone.
		if floor != nil {
			floor.Close()
			kayo.close(b)
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nlive migration, ms: mean (median)   n %14s %14s %14s %14s\n", migMetrics[0], migMetrics[1], migMetrics[2], migMetrics[3])
	for _, mem := range []int64{128, 1024} {
		f, k := results[fmt.Sprintf("%d floor", mem)], results[fmt.Sprintf("%d kayo", mem)]
		for _, p := range []struct {
			name string
			r    *migRow
		}{{"floor (raw QMP)", f}, {"kayo (UpdateVM)", k}} {
			if p.r == nil {
				continue
			}
			fmt.Fprintf(&sb, "  %4d MiB %-22s %3d", mem, p.name, len(p.r.m[0]))
			for j := range migMetrics {
				fmt.Fprintf(&sb, " %14s", fmt.Sprintf("%.0f (%.0f)", qmean(p.r.m[j]), qmedian(p.r.m[j])))
			}
			sb.WriteString("\n")
		}
		if f == nil || k == nil {
			continue
		}
		fmt.Fprintf(&sb, "  %4d MiB %-22s    ", mem, "kayo/floor, means")
		for j := range migMetrics {
			fmt.Fprintf(&sb, " %14s", fmt.Sprintf("%.2fx", qmean(k.m[j])/max(qmean(f.m[j]), 1)))
		}
		fmt.Fprintf(&sb, "\n  %4d MiB %-22s    ", mem, "  95% interval")
		for j := range migMetrics {
			lo, hi := ratioInterval(k.m[j], f.m[j])
			fmt.Fprintf(&sb, " %14s", fmt.Sprintf("%.2f-%.2f", lo, hi))
		}
		fmt.Fprintf(&sb, "\n  %4d MiB %-22s    ", mem, "kayo/floor, medians")
		for j := range migMetrics {
			fmt.Fprintf(&sb, " %14s", fmt.Sprintf("%.2fx", qmedian(k.m[j])/max(qmedian(f.m[j]), 1)))
		}
		sb.WriteString("\n")
	}
	sb.WriteString("  total, downtime: QEMU's query-migrate; pause: downtime + completion to `cont` on the target (what the\n" +
		"  guest sees stopped); wall: the whole move as its caller waits for it (floor: target launch to cont and\n" +
		"  the source gone; kayo: UpdateVM); interval: bootstrap of the ratio of means over the rounds\n")
	b.Log(sb.String())
	_, _ = fmt.Fprint(os.Stdout, sb.String())
}

var migMetrics = [...]string{"total", "downtime", "pause", "wall"}

// migRow holds one side's rounds, per metric of migMetrics.
type migRow struct{ m [len(migMetrics)][]float64 }

func qmean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func qmedian(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// ratioInterval is a bootstrap 95% interval of mean(k)/mean(f): both
// samples resampled with replacement, 2000 times, fixed seed.
func ratioInterval(k, f []float64) (lo, hi float64) {
	if len(k) == 0 || len(f) == 0 {
		return 0, 0
	}
	rng := rand.New(rand.NewPCG(1, 2))
	resample := func(xs []float64) float64 {
		var s float64
		for range xs {
			s += xs[rng.IntN(len(xs))]
		}
		return s / float64(len(xs))
	}
	rs := make([]float64, 2000)
	for i := range rs {
		rs[i] = resample(k) / max(resample(f), 1)
	}
	sort.Float64s(rs)
	return rs[len(rs)*25/1000], rs[len(rs)*975/1000]
}

// cleanupOn is a sub-benchmark's TB whose cleanups and temp dirs belong to
// the parent: the environment outlives the sub-benchmark's N=1 run.
type cleanupOn struct {
	testing.TB
	parent testing.TB
}

func (c cleanupOn) Cleanup(f func())   { c.parent.Cleanup(f) }
func (c cleanupOn) TempDir() string    { return c.parent.TempDir() }
func (c cleanupOn) Setenv(k, v string) { c.parent.Setenv(k, v) }

// qemuKayo is the kayo side: a data dir with the seed's hosts in a qemu
// cluster, volume O:, agents for both nodes and the guest WEB01.
type qemuKayo struct {
	e      *engine.Engine
	dir    string
	spec   engine.VMSpec
	nodes  []string
	id     string
	n      int
	agents []*qemutest.Agent
	closed bool
}

// close stops the agents (and with them the guest) and the engine.
func (k *qemuKayo) close(b testing.TB) {
	if k.closed {
		return
	}
	k.closed = true
	for _, a := range k.agents {
		a.Stop(b)
	}
	_ = k.e.Close()
}

func newQEMUKayo(b testing.TB, mem int64, guestDir string) *qemuKayo {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	e, err := engine.Open(engine.Config{DataDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for i, n := range []string{"Y-21-2k8x64", "Y-22-2k8x64"} {
		oct := 21 + i
		_, err := e.CreateHost(ctx, engine.HostSpec{Name: n, Address: fmt.Sprintf("192.0.2.%d", oct), OSEdition: "enterprise",
			ProcessorVendor: "intel", ProcessorModel: "Xeon E5440", ProcessorCores: 8, MemoryMB: 32768,
			Features: []string{"Hyper-V", "Failover-Clustering"},
			Adapters: []engine.Adapter{{Name: "Public", Network: "192.0.2.0/24", Address: fmt.Sprintf("192.0.2.%d", oct)},
				{Name: "Heartbeat", Network: "10.10.10.0/24", Address: fmt.Sprintf("10.10.10.%d", oct)}}})
		if err != nil {
			b.Fatal(err)
		}
		names = append(names, n)
	}
	if _, err := e.CreateCluster(ctx, engine.ClusterSpec{Name: "HVCLUSTER", Nodes: names, StaticAddress: "192.0.2.50/24",
		Hypervisor: engine.HypervisorQEMU, HeartbeatTimeoutSeconds: 10}); err != nil {
		b.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, engine.VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 8, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 8})
	if err != nil {
		b.Fatal(err)
	}
	agents := qemutest.StartAgents(b, dir, guestDir, names...)
	k := &qemuKayo{e: e, dir: dir, nodes: names, agents: agents, spec: engine.VMSpec{Cluster: "HVCLUSTER", Volume: vol.ID, Name: "WEB01", MemoryMB: mem,
		ProcessorCount: 1, VHD: engine.VHDSpec{SizeGiB: 1, Type: engine.VHDDynamic}, OwnerNode: names[0], AntiAffinityMode: "preferred",
		Migration: engine.MigrationLive, State: engine.VMRunning, Failback: engine.FailbackSpec{Mode: engine.FailbackPrevent},
		MaxFailures: 1, FailurePeriodHours: 6}}
	b.Cleanup(func() { k.close(b) })
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := e.CreateVM(cctx, k.spec); err != nil {
		b.Fatal(err)
	}
	if k.id, k.n, err = qemutest.WaitCounterID(cctx, k.serial(), 3); err != nil {
		b.Fatal(err)
	}
	return k
}

func (k *qemuKayo) serial() string { return qemutest.SerialPath(k.dir, k.spec.OwnerNode, k.spec.Name) }

// migrate moves the guest to the other node with UpdateVM (timed) and
// checks its counter continues there. resume is the milliseconds from the
// source agent seeing the migration complete to the target agent's cont
// returning (from their logs).
func (k *qemuKayo) migrate(ctx context.Context, b testing.TB) (lm *engine.MigrationRecord, resume, wall int64) {
	b.Helper()
	if id, n, ok := qemutest.Counter(k.serial()); ok {
		k.id, k.n = id, n
	}
	if k.spec.OwnerNode == k.nodes[0] {
		k.spec.OwnerNode = k.nodes[1]
	} else {
		k.spec.OwnerNode = k.nodes[0]
	}
	t0 := time.Now()
	vm, err := k.e.UpdateVM(ctx, k.spec)
	wall = time.Since(t0).Milliseconds()
	if err != nil {
		b.Fatal(err)
	}
	lm = vm.LastMigration
	if lm == nil || lm.Type != engine.MigrationLive || vm.Node != k.spec.OwnerNode {
		b.Fatalf("migration: node %s, %+v", vm.Node, lm)
	}
	id, n, err := qemutest.WaitCounterID(ctx, k.serial(), k.n+1)
	if err != nil {
		b.Fatal(err)
	}
	if id != k.id {
		b.Fatalf("the guest rebooted: boot id %s before the move, %s after", k.id, id)
	}
	k.n = n
	from := k.nodes[0]
	if from == k.spec.OwnerNode {
		from = k.nodes[1]
	}
	done := agentLogTime(b, filepath.Join(k.dir, "agent-"+from+".log"), "WEB01 live migration completed")
	cont := agentLogTime(b, filepath.Join(k.dir, "agent-"+k.spec.OwnerNode+".log"), "WEB01 resumed")
	return lm, cont.Sub(done).Milliseconds(), wall
}

// agentLogTime is the time of the last line of an agent's log that holds
// what ("15:04:05.000 agent NODE: ..."; the same day).
func agentLogTime(b testing.TB, log, what string) time.Time {
	b.Helper()
	data, err := os.ReadFile(log)
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], what) {
			if t, err := time.Parse("15:04:05.000", strings.SplitN(lines[i], " ", 2)[0]); err == nil {
				return t
			}
		}
	}
	b.Fatalf("no %q in %s", what, log)
	return time.Time{}
}
