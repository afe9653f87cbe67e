package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// KAYO_PROFILE_DIR makes kayoctl write its CPU profile there; unset, none.
func TestProfileDir(t *testing.T) {
	dir := t.TempDir()
	startProfile(func(string) string { return "" })()
	startProfile(func(k string) string {
		if k == profileEnv {
			return dir
		}
		return ""
	})()
	fi, err := os.Stat(filepath.Join(dir, fmt.Sprintf("kayoctl-%d.cpu.pprof", os.Getpid())))
	if err != nil || fi.Size() == 0 {
		t.Fatalf("no CPU profile in %s: %v", dir, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("%d files in %s, want the one profile", len(ents), dir)
	}
}
