package store_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// readersMain is the helper "readers": ten goroutines that read the file
// without pause, as ten waits for node work poll their results
// (internal/engine/nodework.go), until the process is killed.
func readersMain(b *store.Bolt) int {
	var wg sync.WaitGroup
	var once sync.Once
	for range 10 {
		wg.Go(func() {
			for {
				if _, err := b.Get(bg, "k"); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				once.Do(func() { fmt.Println("ready") })
			}
		})
	}
	wg.Wait()
	return 0
}

// A process that reads without pause must not keep another process's
// writer out: the holder lets go of the file when another process waits
// for it (bolt_turns.go), where a writer polling for the lock would
// otherwise almost never find it free (it is let go and taken again
// within microseconds) and wait until its lock timeout.
func TestBoltWriterNotStarvedByReaders(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kayo.db")
	b := openBolt(t, path, store.BoltOptions{LockTimeout: 20 * time.Second})
	if _, err := b.Commit(bg, nil, []store.Op{store.Put("k", []byte("v"))}); err != nil {
		t.Fatal(err)
	}
	cmd := helper(t, "readers", path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	out := bufio.NewScanner(stdout)
	if !out.Scan() || out.Text() != "ready" {
		t.Fatalf("the reading helper did not get ready: %q %v", out.Text(), out.Err())
	}
	var worst, total time.Duration
	const commits = 20
	for i := range commits {
		t0 := time.Now()
		if _, err := b.Commit(bg, nil, []store.Op{store.Put("w", fmt.Appendf(nil, "%d", i))}); err != nil {
			t.Fatalf("commit %d beside a reading process: %v", i, err)
		}
		d := time.Since(t0)
		worst, total = max(worst, d), total+d
	}
	t.Logf("%d commits beside a process reading without pause: mean %v, worst %v", commits, (total / commits).Round(time.Microsecond), worst.Round(time.Microsecond))
	if st, err := os.Stat(store.WaitFile(path)); err != nil {
		t.Errorf("the marker of waiting processes: %v", err)
	} else if st.Mode().Perm() != 0o600 {
		t.Errorf("the marker of waiting processes has mode %v, want 0600", st.Mode().Perm())
	}
	if worst > time.Second {
		t.Fatalf("a commit waited %v for a process that only reads (mean %v): it starved", worst.Round(time.Millisecond), (total / commits).Round(time.Millisecond))
	}
}
