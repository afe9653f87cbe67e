//go:build unix

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/testcli"
)

// TestLockTimeout: while another process holds the cluster database, apply
// waits at most the provider's lock_timeout and then fails with a clear
// error instead of hanging; once the database is free, the same apply works.
func TestLockTimeout(t *testing.T) {
	cli := testcli.CLIs(t)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	mirror := testcli.NewMirror(t, testcli.KayoProvider(t))
	dataDir := t.TempDir()

	wd := newWorkdir(t, cli, mirror, "w", providerBlock(dataDir, "3s")+hostBlock("h", "LOCK-01", 141))
	testcli.Must(t, wd.Init(ctx))
	// Create the database with a first host, then hold its file lock the
	// way another writer would (bbolt locks the whole file with flock).
	testcli.Must(t, wd.Apply(ctx))
	if err := wd.WriteFile("main.tf", providerBlock(dataDir, "3s")+
		hostBlock("h", "LOCK-01", 141)+hostBlock("h2", "LOCK-02", 142)); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dataDir, engine.DatabaseFile), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	r := wd.Apply(ctx)
	if r.Err == nil {
		t.Fatal("apply succeeded while the database was held by another process")
	}
	out := r.Stdout + r.Stderr
	// The CLI wraps long diagnostics: compare with whitespace collapsed.
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "timed out waiting for the cluster database") {
		t.Errorf("apply failed without the lock-timeout error:\n%s", out)
	}
	if r.Duration > 60*time.Second {
		t.Errorf("apply took %s with lock_timeout = 3s", r.Duration)
	}
	t.Logf("held database: apply failed after %s", r.Duration.Round(time.Millisecond))

	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	testcli.Must(t, wd.Apply(ctx))
	changes, r := wd.Plan(ctx)
	testcli.Must(t, r)
	if changes {
		t.Fatalf("plan after apply is not empty:\n%s", r.Stdout)
	}
}
