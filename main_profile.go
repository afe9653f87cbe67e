package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// profileEnv names a directory: when set, the provider process writes a
// CPU profile (kayo-<pid>.cpu.pprof) there, from start until it is told to
// exit, a block, mutex and allocation profile and its memory statistics
// (kayo-<pid>.mem.txt: Go's MemStats.Sys, the memory it took from the OS,
// and the collector's runs) at exit; with KAYO_PROFILE_TRACE=1
// also an execution trace (kayo-<pid>.trace), which gives the time spent
// blocked in system calls (fsync, file locks) that a CPU profile does not
// show, at a cost of its own (it slows the process noticeably). For
// benchmarks (bench/vm_test.go passes both through):
//
//	KAYO_PROFILE_DIR=/tmp/prof go test -run '^$' -bench VMLifecycle -benchtime=1x ./bench/
//	go tool pprof -top /tmp/prof/kayo-1234.cpu.pprof
//	go tool trace -pprof=syscall /tmp/prof/kayo-1234.trace > sys.pprof && go tool pprof -top sys.pprof
const profileEnv = "KAYO_PROFILE_DIR"

// startProfiles starts the profiles KAYO_PROFILE_DIR asks for and returns
// the function that writes them out.
func startProfiles() (stop func()) {
	dir := os.Getenv(profileEnv)
	if dir == "" {
		return func() {}
	}
	base := filepath.Join(dir, fmt.Sprintf("kayo-%d", os.Getpid()))
	var closers []func()
	if f, err := os.Create(base + ".cpu.pprof"); err == nil {
		if pprof.StartCPUProfile(f) == nil {
			closers = append(closers, func() { pprof.StopCPUProfile(); f.Close() })
		} else {
			f.Close()
		}
	}
	if os.Getenv("KAYO_PROFILE_TRACE") == "1" {
		if f, err := os.Create(base + ".trace"); err == nil {
			if trace.Start(f) == nil {
				closers = append(closers, func() { trace.Stop(); f.Close() })
			} else {
				f.Close()
			}
		}
	}
	runtime.SetBlockProfileRate(int(1e5)) // one event per 100µs blocked
	runtime.SetMutexProfileFraction(10)
	return func() {
		for _, c := range closers {
			c()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		_ = os.WriteFile(base+".mem.txt", fmt.Appendf(nil, "sys_bytes %d\nheap_sys_bytes %d\ntotal_alloc_bytes %d\nnum_gc %d\ngc_pause_ns %d\n",
			ms.Sys, ms.HeapSys, ms.TotalAlloc, ms.NumGC, ms.PauseTotalNs), 0o644)
		for _, name := range []string{"block", "mutex", "allocs"} {
			if f, err := os.Create(base + "." + name + ".pprof"); err == nil {
				_ = pprof.Lookup(name).WriteTo(f, 0)
				f.Close()
			}
		}
	}
}
