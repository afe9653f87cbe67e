package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
)

// startProfile writes a CPU profile of this process (noop-<pid>.cpu.pprof)
// and, at the end, its allocation profile (noop-<pid>.allocs.pprof) into
// KAYO_PROFILE_DIR when it is set, as the kayo provider does
// (main_profile.go), so that the floor's profiles can be read beside
// kayo's; it returns the function that ends them.
func startProfile() (stop func()) {
	dir := os.Getenv("KAYO_PROFILE_DIR")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("noop-%d.cpu.pprof", os.Getpid())))
	if err != nil {
		return func() {}
	}
	if pprof.StartCPUProfile(f) != nil {
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		if a, err := os.Create(filepath.Join(dir, fmt.Sprintf("noop-%d.allocs.pprof", os.Getpid()))); err == nil {
			_ = pprof.Lookup("allocs").WriteTo(a, 0)
			a.Close()
		}
	}
}
