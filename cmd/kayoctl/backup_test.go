package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// runBin runs the built kayoctl, failing the test if it does not exit
// within limit (a damaged database must never hang it).
func runBin(t *testing.T, bin string, limit time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("kayoctl %q did not exit within %s\n%s", args, limit, errb.String())
	}
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// A damaged cluster.db makes every kayoctl command fail cleanly (exit 1,
// the file named, restore suggested), never panic or hang; a backup taken
// before restores it, and restore refuses a damaged backup.
func TestDamagedDatabaseBackupRestore(t *testing.T) {
	bin := testcli.Build(t, "./cmd/kayoctl")
	dir := newDataDir(t, 10)
	db := filepath.Join(dir, engine.DatabaseFile)
	backup := filepath.Join(t.TempDir(), "cluster-backup.db")
	if code, out, errs := runBin(t, bin, 30*time.Second, "--data-dir", dir, "backup", backup); code != 0 || !strings.Contains(out, "Backup written to "+backup) {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errs)
	}
	const limit = 10 * time.Second // well above the lock timeout below
	for _, size := range []int64{8192, 16384, 32768} {
		if err := os.Truncate(db, size); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"status"}, {"vm", "list", "--json"}, {"host", "fail", "Y-21-2k8x64"}, {"events"}} {
			all := append([]string{"--data-dir", dir, "--lock-timeout", "2s"}, args...)
			code, _, errs := runBin(t, bin, limit, all...)
			if code != exitError || !strings.Contains(errs, db) || !strings.Contains(errs, "kayoctl restore") ||
				strings.Contains(errs, "panic") || strings.Contains(errs, "goroutine ") {
				t.Fatalf("kayoctl %q on a database truncated to %d bytes: exit %d\n%s", args, size, code, errs)
			}
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.db")
	if err := os.WriteFile(bad, []byte(strings.Repeat("x", 20000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runBin(t, bin, limit, "--data-dir", dir, "restore", bad); code != exitError ||
		!strings.Contains(errs, "the backup "+bad+" is damaged") {
		t.Fatalf("restore of a damaged backup: exit %d\n%s", code, errs)
	}
	// The damaged database is replaced without --force (flags after the
	// positional are accepted) and kept.
	code, out, errs := runBin(t, bin, limit, "--data-dir", dir, "restore", backup)
	if code != 0 || !strings.Contains(out, "Restored "+db) || !strings.Contains(out, "kept as "+db+".replaced-") {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs = runBin(t, bin, limit, "--data-dir", dir, "status"); code != 0 || !strings.Contains(out, "HVCLUSTER") {
		t.Fatalf("status after restore: exit %d\n%s%s", code, out, errs)
	}
	// An intact database is replaced only with --force.
	if code, _, errs = runBin(t, bin, limit, "--data-dir", dir, "restore", backup); code != exitError || !strings.Contains(errs, "pass --force") {
		t.Fatalf("restore over an intact database: exit %d\n%s", code, errs)
	}
	if code, out, errs = runBin(t, bin, limit, "--data-dir", dir, "restore", backup, "--force"); code != 0 {
		t.Fatalf("restore --force after the positional: exit %d\n%s%s", code, out, errs)
	}
}

// A 0-byte cluster.db next to the database marker is refused, not made a
// new empty database.
func TestEmptyDatabaseRefused(t *testing.T) {
	dir := newDataDir(t, 10)
	db := filepath.Join(dir, engine.DatabaseFile)
	if err := os.Truncate(db, 0); err != nil {
		t.Fatal(err)
	}
	code, _, errs := kayoctl(t, nil, "--data-dir", dir, "status")
	if code != exitError || !strings.Contains(errs, db+" is empty") || !strings.Contains(errs, "restore") {
		t.Fatalf("status on an emptied database: exit %d\n%s", code, errs)
	}
	if st, _ := os.Stat(db); st.Size() != 0 {
		t.Fatal("the emptied database was written")
	}
}

// Flags may follow the positional arguments, in the order the usage shows.
func TestFlagsAfterPositionals(t *testing.T) {
	dir := newDataDir(t, 10)
	for _, args := range [][]string{
		{"--data-dir", dir, "host", "fail", "Y-21-2k8x64", "--lock-timeout", "5s"},
		{"host", "recover", "Y-21-2k8x64", "--data-dir", dir},
		{"--data-dir", dir, "volume", "check", "HVCLUSTER/O", "--json"},
	} {
		code, _, errs := kayoctl(t, nil, args...)
		if code == exitUsage {
			t.Errorf("kayoctl %q: usage error: %s", args, errs)
		}
	}
	if code, _, errs := kayoctl(t, nil, "--data-dir", dir, "host", "fail", "A", "B"); code != exitUsage ||
		!strings.Contains(errs, "want exactly one host name, got 2") {
		t.Errorf("two names: exit %d %s", code, errs)
	}
	if code, _, errs := kayoctl(t, nil, "--data-dir", dir, "status", "--", "--json"); code != exitUsage ||
		!strings.Contains(errs, `unexpected argument "--json"`) {
		t.Errorf("a flag after --: exit %d %s", code, errs)
	}
}
