package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Concurrent reads of one process share one open of the file (a read
// session) and still see every commit that returned before they started;
// commits waiting meanwhile are not starved by a stream of reads.
func TestBoltSharedReads(t *testing.T) {
	ctx := context.Background()
	s, err := OpenBolt(filepath.Join(t.TempDir(), "cluster.db"), BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A session open by one read is joined by the next.
	if _, err := s.Commit(ctx, nil, []Op{Put("k", []byte("0"))}); err != nil {
		t.Fatal(err)
	}
	inside := make(chan struct{})
	release := make(chan struct{})
	go func() {
		_ = s.do(ctx, false, func(*bolt.Tx) error { close(inside); <-release; return nil })
	}()
	<-inside
	if _, err := s.Get(ctx, "k"); err != nil { // would wait for the sem if it could not join
		t.Fatal(err)
	}
	close(release)

	var stop atomic.Bool
	var last atomic.Int64 // highest value known committed
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for r := 0; r < 8; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				want := last.Load()
				kv, err := s.Get(ctx, "k")
				if err != nil {
					errs <- err
					return
				}
				var got int64
				fmt.Sscan(string(kv.Value), &got)
				if got < want {
					errs <- fmt.Errorf("read %d after commit of %d returned", got, want)
					return
				}
			}
		}()
	}
	commits := 0
	deadline := time.Now().Add(300 * time.Millisecond)
	for i := int64(1); time.Now().Before(deadline); i++ {
		if _, err := s.Commit(ctx, nil, []Op{Put("k", []byte(fmt.Sprint(i)))}); err != nil {
			t.Fatal(err)
		}
		last.Store(i)
		commits++
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if commits < 10 {
		t.Errorf("only %d commits in 300 ms beside 8 busy readers: writers starve", commits)
	}
}
