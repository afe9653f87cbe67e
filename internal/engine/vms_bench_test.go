package engine

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// BenchmarkVMPhases does at the engine level what one `terraform apply`
// of the CLI benchmark (bench/vm_test.go) asks of the provider, with
// Terraform's parallelism of 10: per VM, the plan's judgement (PlanVM,
// once in plan and once in apply) and then CreateVM, UpdateVM moving
// owner_node to the next host (live migrations), or the refresh and
// DeleteVM. It runs on the embedded bbolt database (fsync'd commits) and
// the embedded SAN, the way the provider does.
//
//	go test -run '^$' -bench VMPhases -benchtime=3x ./internal/engine/ \
//	    -cpuprofile cpu.out -blockprofile block.out -mutexprofile mutex.out
//	go tool pprof -top engine.test cpu.out
//
// It reports the LUN opens of each phase (devices-opened: one per mount of
// a node, Metrics). BENCH_MOUNT_IDLE=1s sets the runtime's idle detach of
// mounts (Runtime.SetMountIdle; default DefaultMountIdle), as the
// provider's main.go does.
func BenchmarkVMPhases(b *testing.B) {
	const n, hosts, par = 200, 16, 10
	ctx := context.Background()
	var times, cpu [3]time.Duration
	var opened [3]int64
	for b.Loop() {
		b.StopTimer()
		m := &Metrics{}
		e, vol := vmBenchEnv(b, hosts, m)
		spec := func(i, phase int) VMSpec {
			s := vmSpec(vol, fmt.Sprintf("VM%03d", i), 1024)
			s.VHD.SizeGiB = 10
			s.OwnerNode = benchNode((i + phase) % hosts)
			return s
		}
		b.StartTimer()
		for p, op := range []func(i int) error{
			func(i int) error {
				if _, err := e.PlanVM(ctx, spec(i, 0)); err != nil {
					return err
				}
				if _, err := e.PlanVM(ctx, spec(i, 0)); err != nil {
					return err
				}
				_, err := e.CreateVM(ctx, spec(i, 0))
				return err
			},
			func(i int) error {
				if _, err := e.RefreshVM(ctx, vol.Cluster, spec(i, 1).Name); err != nil {
					return err
				}
				if _, err := e.PlanVM(ctx, spec(i, 1)); err != nil {
					return err
				}
				if _, err := e.PlanVM(ctx, spec(i, 1)); err != nil {
					return err
				}
				_, err := e.UpdateVM(ctx, spec(i, 1))
				return err
			},
			func(i int) error {
				if _, err := e.RefreshVM(ctx, vol.Cluster, spec(i, 1).Name); err != nil {
					return err
				}
				return e.DeleteVM(ctx, vol.Cluster, spec(i, 1).Name)
			},
		} {
			start, c0, o0 := time.Now(), selfCPU(), m.DevicesOpened()
			if err := runN(n, par, op); err != nil {
				b.Fatal(err)
			}
			times[p] += time.Since(start)
			cpu[p] += selfCPU() - c0
			opened[p] += m.DevicesOpened() - o0
		}
		b.StopTimer()
		e.Close()
		b.StartTimer()
	}
	for p, name := range []string{"create", "migrate", "destroy"} {
		b.ReportMetric(float64(times[p].Milliseconds())/float64(b.N), name+"-ms")
		b.ReportMetric(float64(cpu[p].Milliseconds())/float64(b.N), name+"-cpu-ms")
		b.ReportMetric(float64(opened[p])/float64(b.N), name+"-devices-opened")
	}
}

func benchNode(i int) string { return fmt.Sprintf("BENCH-%02d", i) }

// vmBenchEnv is an engine on bbolt in a temp data dir with hosts hosts, a
// cluster of them and volume O:, counting into m.
func vmBenchEnv(b *testing.B, hosts int, m *Metrics) (*Engine, Volume) {
	b.Helper()
	ctx := context.Background()
	rt := NewRuntime()
	if s := os.Getenv("BENCH_MOUNT_IDLE"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("BENCH_MOUNT_IDLE=%q: %v", s, err)
		}
		rt.SetMountIdle(d)
	}
	e, err := openT(Config{DataDir: b.TempDir(), Runtime: rt, Metrics: m})
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for i := range hosts {
		s := seedSpec(benchNode(i), 100+i)
		if _, err := e.CreateHost(ctx, s); err != nil {
			b.Fatal(err)
		}
		names = append(names, s.Name)
	}
	if _, err := e.CreateCluster(ctx, seedCluster("BENCHCLUSTER", names...)); err != nil {
		b.Fatal(err)
	}
	vol, err := e.CreateVolume(ctx, VolumeSpec{Cluster: "BENCHCLUSTER", LUN: "lun0", SizeGiB: 500, Label: "VMSTORE",
		DriveLetter: "O", BlockSize: 4096, NodeSlots: 16})
	if err != nil {
		b.Fatal(err)
	}
	return e, vol
}

// runN runs op(0..n-1) on par goroutines and returns the first error.
func runN(n, par int, op func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := op(i); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("VM %d: %w", i, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return first
}
