package kayofs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs/etcdlock"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
)

// BenchmarkLockManagers: the small-write workload (create + 4 KiB write +
// fsync + delete) under each lock manager, with 1, 2 and 3 nodes (mounts with
// their own managers, working in their own directories at once), against
// one node with the in-kernel OFD locks on a cached device (the floor,
// measured first in the same run). Metric x-floor is the time per file
// relative to the floor; with 2 nodes it is aggregate time per file (total
// time / files of both), so below the 1-node figure means 2 nodes got more
// done together. "etcd-v2" is etcd on a version-2 volume, where every key
// maps onto one metadata lock (as before lock domains, LockDomain).
// "ofd-direct" separates the cost of direct I/O (which
// nodes on different kernels need) from the cost of the leases.
// "-shared" runs the same nodes all in one directory (on a version-5
// volume they then take turns on its directory domain, as on the
// namespace lock before); the target is the figure without it,
// each node in its own directory, as each host works in its own VMs'
// folders.
func BenchmarkLockManagers(b *testing.B) {
	dir := os.Getenv("KAYOFS_BENCH_DIR")
	if dir == "" {
		dir = "/dev/shm"
		if _, err := os.Stat(dir); err != nil {
			dir = ""
		}
	}
	hold := 0 * time.Millisecond // the managers' default MinHold
	if s := os.Getenv("KAYOFS_BENCH_MINHOLD"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("KAYOFS_BENCH_MINHOLD=%q: %v", s, err)
		}
		hold = d
	}
	leases := kayofs.NewDiskLeases(kayofs.DiskLeaseOptions{Timeout: 4 * time.Second, Margin: time.Second,
		IOTimeout: 100 * time.Millisecond, MinHold: hold, Logf: b.Logf})
	// etcd starts only when its cases run (-bench can leave them out), and
	// lives as long as the whole benchmark: a sub-benchmark's cleanup runs
	// after each of its runs.
	var etcdLocks kayofs.LockManagerFactory
	parent := b
	etcdFactory := func() kayofs.LockManagerFactory {
		if etcdLocks == nil && etcdtest.Binary() != "" {
			c := etcdtest.Start(parent, etcdtest.Options{})
			etcdLocks = etcdlock.New(etcdlock.Options{Client: c.Client(parent, "", ""), TTL: 4 * time.Second, MinHold: hold, Logf: parent.Logf})
		}
		return etcdLocks
	}
	var floor float64
	for _, c := range []struct {
		name    string
		locks   kayofs.LockManagerFactory
		direct  bool
		version int // 0: the current format; 2: locked as one by every manager
	}{
		{"ofd", nil, false, 0},
		{"ofd-direct", nil, true, 0},
		{"disk-leases", leases, true, 0},
		{"etcd-v2", nil, true, 2},
		{"etcd", nil, true, 0},
	} {
		for _, run := range []struct {
			nodes  int
			shared bool
		}{{1, false}, {2, false}, {3, false}, {2, true}, {3, true}} {
			nodes, name := run.nodes, fmt.Sprintf("%s/%dnodes", c.name, run.nodes)
			if run.shared {
				name += "-shared"
			}
			b.Run(name, func(b *testing.B) {
				locks := c.locks
				if strings.HasPrefix(c.name, "etcd") {
					if locks = etcdFactory(); locks == nil {
						b.Skip("no etcd binary (KAYO_ETCD_BIN or etcd on PATH)")
					}
				}
				vols := benchMounts(b, dir, nodes, locks, c.direct, c.version)
				dirOf := func(i int) string { return fmt.Sprintf("n%d", i) }
				if run.shared {
					dirOf = func(int) string { return "n0" }
				}
				b.ResetTimer()
				start := time.Now()
				var wg sync.WaitGroup
				errs := make(chan error, nodes)
				for i, v := range vols {
					n := b.N / nodes
					if i == 0 {
						n += b.N % nodes
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs <- smallWrites(v, dirOf(i), fmt.Sprintf("n%d-", i), n)
					}()
				}
				wg.Wait()
				el := time.Since(start)
				b.StopTimer()
				for range vols {
					if err := <-errs; err != nil {
						b.Fatal(err)
					}
				}
				per := float64(el.Nanoseconds()) / float64(b.N)
				if c.name == "ofd" && nodes == 1 {
					floor = per
				}
				if floor > 0 {
					b.ReportMetric(per/floor, "x-floor")
				}
			})
		}
	}
}

func benchMounts(b *testing.B, dir string, nodes int, locks kayofs.LockManagerFactory, direct bool, version int) []*kayofs.Volume {
	b.Helper()
	d, err := os.MkdirTemp(dir, "kayofs-lockbench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	img := filepath.Join(d, "lun.img")
	dev, err := kayofs.CreateImage(img, 1<<30)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { dev.Close() })
	if _, err := kayofs.Format(dev, kayofs.FormatOptions{Slots: 4, Version: version}); err != nil {
		b.Fatal(err)
	}
	var vols []*kayofs.Volume
	for i := 0; i < nodes; i++ {
		nd := dev
		if direct {
			if nd, err = kayofs.OpenDeviceDirect(img); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { nd.Close() })
		}
		v, err := kayofs.Mount(nd, fmt.Sprintf("N%d", i), kayofs.MountOptions{Locks: locks})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { v.Unmount() })
		if err := v.Mkdir(fmt.Sprintf("n%d", i)); err != nil {
			b.Fatal(err)
		}
		vols = append(vols, v)
	}
	return vols
}

// smallWrites: n times create + 4 KiB write + fsync + delete, in dir,
// of files named tag + number.
func smallWrites(v *kayofs.Volume, dir, tag string, n int) error {
	buf := make([]byte, 4096)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s/%sf%d", dir, tag, i)
		f, err := v.Create(name)
		if err != nil {
			return err
		}
		buf[0] = byte(i)
		if _, err := f.WriteAt(buf, 0); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		if err := v.Remove(name); err != nil {
			return err
		}
	}
	return nil
}
