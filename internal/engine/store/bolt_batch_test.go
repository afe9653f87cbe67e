package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Commits queued while the file is busy are written in one transaction,
// each with its own revision and its own comparisons.
func TestBoltGroupCommit(t *testing.T) {
	ctx := context.Background()
	s, err := OpenBolt(filepath.Join(t.TempDir(), "cluster.db"), BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.sem <- struct{}{} // hold the file as a running operation would
	before := s.queue.batches
	const n = 12
	var wg sync.WaitGroup
	revs := make([]int64, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Two commits race to create "same": exactly one may win.
			key := fmt.Sprintf("k%02d", i)
			if i < 2 {
				key = "same"
			}
			revs[i], errs[i] = s.Commit(ctx, []Cmp{Absent(key)}, []Op{Put(key, []byte{byte(i)})})
		}()
	}
	for {
		s.queue.mu.Lock()
		queued := len(s.queue.pending)
		s.queue.mu.Unlock()
		if queued == n {
			break
		}
		time.Sleep(time.Millisecond)
	}
	<-s.sem
	wg.Wait()
	if got := s.queue.batches - before; got != 1 {
		t.Fatalf("%d transactions for %d queued commits, want 1", got, n)
	}
	seen := map[int64]bool{}
	conflicts := 0
	for i := range n {
		switch {
		case errors.Is(errs[i], ErrConflict):
			conflicts++
		case errs[i] != nil:
			t.Fatalf("commit %d: %v", i, errs[i])
		case seen[revs[i]]:
			t.Fatalf("revision %d given twice", revs[i])
		default:
			seen[revs[i]] = true
		}
	}
	if conflicts != 1 || len(seen) != n-1 {
		t.Fatalf("%d conflicts and %d distinct revisions; want 1 and %d", conflicts, len(seen), n-1)
	}
	kvs, rev, err := s.List(ctx, "")
	if err != nil || len(kvs) != n-1 || rev != int64(n-1) {
		t.Fatalf("List: %d keys at revision %d (%v); want %d at %d", len(kvs), rev, err, n-1, n-1)
	}
	for _, kv := range kvs {
		if !seen[kv.ModRevision] {
			t.Fatalf("%s stored at revision %d, which no commit returned", kv.Key, kv.ModRevision)
		}
	}
}
