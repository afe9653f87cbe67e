package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/qemutest"
)

// BenchmarkQEMUMigration live-migrates the test guest (128 MiB and 1 GiB)
// between two QEMU processes on loopback, two ways in one run:
//
//	floor  raw QMP: two QEMU processes, this package's NBD server on a raw
//	       file, `migrate`, wait, kill the source, `cont` on the target;
//	       no database, no agents, no Kayo FS.
//	kayo   the engine's UpdateVM of owner_node on a qemu cluster (what
//	       terraform apply calls), carried out by two `kayoctl agent`
//	       processes, the disk a dynamic VHD on Kayo FS served over NBD.
//
// Metrics: QEMU's total-time and downtime (query-migrate) and the wall
// time of the whole move (floor: migrate → cont; kayo: UpdateVM call).
func BenchmarkQEMUMigration(b *testing.B) {
	bin, g, err := qemu.Prepare(qemu.RepoRoot())
	if err != nil {
		qemu.SkipOrFail(b, err)
	}
	type row struct{ total, down, wall []float64 }
	results := map[string]*row{}
	var mu sync.Mutex
	add := func(key string, total, down, wall int64) {
		mu.Lock()
		defer mu.Unlock()
		r := results[key]
		if r == nil {
			r = &row{}
			results[key] = r
		}
		r.total = append(r.total, float64(total))
		r.down = append(r.down, float64(down))
		r.wall = append(r.wall, float64(wall))
	}
	for _, mem := range []int64{128, 1024} {
		b.Run(fmt.Sprintf("mem=%dMiB/path=floor", mem), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				res, err := qemu.RawMigration(ctx, bin, g, mem, b.TempDir())
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				add(fmt.Sprintf("%d floor", mem), res.TotalMs, res.DowntimeMs, res.WallMs)
				b.ReportMetric(float64(res.TotalMs), "total-ms")
				b.ReportMetric(float64(res.DowntimeMs), "downtime-ms")
				b.ReportMetric(float64(res.WallMs), "wall-ms")
			}
		})
		b.Run(fmt.Sprintf("mem=%dMiB/path=kayo", mem), func(b *testing.B) {
			e, spec := qemuBenchEnv(b, mem, filepath.Dir(g.Kernel))
			nodes := []string{"Y-21-2k8x64", "Y-22-2k8x64"}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				spec.OwnerNode = nodes[(i+1)%2]
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				t0 := time.Now()
				vm, err := e.UpdateVM(ctx, spec)
				wall := time.Since(t0).Milliseconds()
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				lm := vm.LastMigration
				if lm == nil || lm.Type != engine.MigrationLive || vm.Node != spec.OwnerNode {
					b.Fatalf("migration: node %s, %+v", vm.Node, lm)
				}
				add(fmt.Sprintf("%d kayo", mem), lm.DurationMs, lm.DowntimeMs, wall)
				b.ReportMetric(float64(lm.DurationMs), "total-ms")
				b.ReportMetric(float64(lm.DowntimeMs), "downtime-ms")
				b.ReportMetric(float64(wall), "wall-ms")
			}
		})
	}
	keys := make([]string, 0, len(results))
	for k := range results {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nlive migration, medians (ms)   %10s %10s %10s   %s\n", "total", "downtime", "wall", "ratio to floor (total / downtime / wall)")
	for _, mem := range []int64{128, 1024} {
		f, k := results[fmt.Sprintf("%d floor", mem)], results[fmt.Sprintf("%d kayo", mem)]
		for _, p := range []struct {
			name string
			r    *row
		}{{"floor (raw QMP)", f}, {"kayo (engine + agents)", k}} {
			if p.r == nil {
				continue
			}
			ratio := ""
			if p.r == k && f != nil {
				ratio = fmt.Sprintf("%.2fx / %.2fx / %.2fx", qmedian(k.total)/qmedian(f.total), qmedian(k.down)/max(qmedian(f.down), 1), qmedian(k.wall)/qmedian(f.wall))
			}
			fmt.Fprintf(&sb, "  %4d MiB %-22s %10.0f %10.0f %10.0f   %s\n", mem, p.name, qmedian(p.r.total), qmedian(p.r.down), qmedian(p.r.wall), ratio)
		}
	}
	b.Log(sb.String())
	_, _ = fmt.Fprint(os.Stdout, sb.String())
}

func qmedian(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// qemuBenchEnv: a data dir with the seed's hosts in a qemu cluster, volume
// O:, agents for both nodes and the guest running on Y-21-2k8x64.
func qemuBenchEnv(b *testing.B, mem int64, guestDir string) (*engine.Engine, engine.VMSpec) {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	e, err := engine.Open(engine.Config{DataDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = e.Close() })
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
	qemutest.StartAgents(b, dir, guestDir, names...)
	time.Sleep(time.Second) // the agents' first heartbeats
	spec := engine.VMSpec{Cluster: "HVCLUSTER", Volume: vol.ID, Name: "WEB01", MemoryMB: mem, ProcessorCount: 1,
		VHD: engine.VHDSpec{SizeGiB: 1, Type: engine.VHDDynamic}, OwnerNode: names[0], AntiAffinityMode: "preferred",
		Migration: engine.MigrationLive, State: engine.VMRunning, Failback: engine.FailbackSpec{Mode: engine.FailbackPrevent},
		MaxFailures: 1, FailurePeriodHours: 6}
	cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := e.CreateVM(cctx, spec); err != nil {
		b.Fatal(err)
	}
	if err := qemutest.WaitCounter(cctx, qemutest.SerialPath(dir, names[0], "WEB01"), 3); err != nil {
		b.Fatal(err)
	}
	return e, spec
}
