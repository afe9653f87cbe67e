package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
)

// profileEnv names a directory: when set, kayoctl writes a CPU profile of
// its run there (kayoctl-<pid>.cpu.pprof), as the provider does
// (main_profile.go). The benchmarks' agents inherit it, so their CPU is
// profiled across a run (the agents' share of the machine during a live
// migration, bench/qemu_test.go); an agent writes its profile when it
// stops (SIGTERM):
//
//	KAYO_PROFILE_DIR=/tmp/prof go test -run '^$' -bench QEMUMigration -benchtime=4x ./bench/
//	go tool pprof -top /tmp/prof/kayoctl-1234.cpu.pprof
const profileEnv = "KAYO_PROFILE_DIR"

// startProfile starts the CPU profile KAYO_PROFILE_DIR asks for and
// returns the function that writes it out.
func startProfile(getenv func(string) string) (stop func()) {
	dir := getenv(profileEnv)
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("kayoctl-%d.cpu.pprof", os.Getpid())))
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }
}
