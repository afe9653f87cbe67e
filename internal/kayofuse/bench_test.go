package kayofuse

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkStreamingCopy: cp of a sparse-ish file (half data, then 1 MiB
// of data every 4 MiB) into the mount and back out, against cp of the same
// file on the host's own file system (the floor), in one run. Size: 2 GiB,
// or $KAYOFUSE_BENCH_MIB. Reports seconds per copy and each direction's
// ratio to the floor; and, to tell FUSE's share from Kayo FS's, the time
// of writing the same data through the kayofs API directly.
func BenchmarkStreamingCopy(b *testing.B) {
	mib := int64(2048)
	if s := os.Getenv("KAYOFUSE_BENCH_MIB"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 8 {
			b.Fatalf("KAYOFUSE_BENCH_MIB=%q: want a whole number of MiB, at least 8", s)
		}
		mib = n
	}
	tv := newVolume(b, 2*mib<<20+512<<20) // the mount's copy and the API's
	s := tv.mount(b, Options{})
	host := b.TempDir()
	src := filepath.Join(host, "src.bin")
	writeSparseish(b, src, mib)
	// Each copy starts with no dirty pages of the one before (which the
	// kernel would write back during it).
	cp := func(from, to string) time.Duration {
		b.Helper()
		syscall.Sync()
		start := time.Now()
		if out, err := exec.Command("cp", from, to).CombinedOutput(); err != nil {
			b.Fatalf("cp %s %s: %v\n%s", from, to, err, out)
		}
		return time.Since(start)
	}
	rm := func(p string) {
		b.Helper()
		if err := os.Remove(p); err != nil {
			b.Fatal(err)
		}
	}
	// The kayofs API alone, no FUSE: the same data written with WriteAt.
	api := func() time.Duration {
		b.Helper()
		syscall.Sync()
		start := time.Now()
		sf, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		defer sf.Close()
		f, err := tv.v.Create("api.bin")
		if err != nil {
			b.Fatal(err)
		}
		// 1 MiB pieces, all-zero ones skipped (cp skips the holes), the
		// others written in runs of up to 4 MiB
		buf := make([]byte, 4<<20)
		var run, runOff int64
		flush := func() {
			if run > 0 {
				if _, err := f.WriteAt(buf[:run], runOff); err != nil {
					b.Fatal(err)
				}
			}
			run = 0
		}
		for off := int64(0); off < mib<<20; off += 1 << 20 {
			if run == int64(len(buf)) {
				flush()
			}
			if run == 0 {
				runOff = off
			}
			piece := buf[run : run+1<<20]
			if _, err := sf.ReadAt(piece, off); err != nil {
				b.Fatal(err)
			}
			if bytes.Count(piece, []byte{0}) == len(piece) {
				flush()
				continue
			}
			run += 1 << 20
		}
		flush()
		if err := f.Truncate(mib << 20); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var floor, in, out, direct time.Duration
	b.ResetTimer()
	for range b.N {
		floor += cp(src, filepath.Join(host, "floor.bin"))
		in += cp(src, filepath.Join(s.Dir(), "copy.bin"))
		out += cp(filepath.Join(s.Dir(), "copy.bin"), filepath.Join(host, "out.bin"))
		direct += api()
		b.StopTimer()
		rm(filepath.Join(host, "floor.bin"))
		rm(filepath.Join(s.Dir(), "copy.bin"))
		rm(filepath.Join(host, "out.bin"))
		if err := tv.v.Remove("api.bin"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	n := float64(b.N)
	b.ReportMetric(floor.Seconds()/n, "host-cp-s")
	b.ReportMetric(in.Seconds()/n, "cp-in-s")
	b.ReportMetric(out.Seconds()/n, "cp-out-s")
	b.ReportMetric(direct.Seconds()/n, "kayofs-api-in-s")
	b.ReportMetric(in.Seconds()/floor.Seconds(), "in-x-floor")
	b.ReportMetric(out.Seconds()/floor.Seconds(), "out-x-floor")
	b.ReportMetric(float64(mib<<20)*n/in.Seconds()/(1<<20), "in-MiB/s")
	b.ReportMetric(float64(mib<<20)*n/out.Seconds()/(1<<20), "out-MiB/s")
}
