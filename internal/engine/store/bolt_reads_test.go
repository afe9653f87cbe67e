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

// A read of this process does not wait for a commit in progress (its
// fsync): it joins the commit's open of the file and sees the state before
// that commit; once the commit returned, reads see it.
func TestBoltReadsBesideSlowCommit(t *testing.T) {
	ctx := context.Background()
	s, err := OpenBolt(filepath.Join(t.TempDir(), "cluster.db"), BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Commit(ctx, nil, []Op{Put("k", []byte("old"))}); err != nil {
		t.Fatal(err)
	}
	// within runs read and fails the test unless it returns while the
	// commit is held inside its transaction.
	within := func(what string, read func() (string, error)) {
		t.Helper()
		type res struct {
			v   string
			err error
		}
		done := make(chan res, 1)
		go func() { v, err := read(); done <- res{v, err} }()
		select {
		case r := <-done:
			if r.err != nil || r.v != "old" {
				t.Errorf("%s beside the commit: %q, %v; want the value before it, \"old\"", what, r.v, r.err)
			}
		case <-time.After(2 * time.Second):
			t.Errorf("%s waited behind a commit in progress (2 s)", what)
		}
	}
	for _, via := range []string{"Commit", "a write transaction"} {
		inside, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		hold := func() { once.Do(func() { close(inside); <-release }) }
		committed := make(chan error, 1)
		go func() {
			if via == "Commit" {
				s.inCommit = hold
				_, err := s.Commit(ctx, nil, []Op{Put("k", []byte("new"))})
				committed <- err
				return
			}
			committed <- s.do(ctx, true, func(tx *bolt.Tx) error {
				hold()
				return tx.Bucket(bucketKV).Put([]byte("k"), append(make([]byte, headerBytes), "new"...))
			})
		}()
		<-inside
		within("Get ("+via+")", func() (string, error) {
			kv, err := s.Get(ctx, "k")
			return string(kv.Value), err
		})
		within("List ("+via+")", func() (string, error) {
			kvs, _, err := s.List(ctx, "k")
			if len(kvs) != 1 {
				return fmt.Sprint(len(kvs), " keys"), err
			}
			return string(kvs[0].Value), err
		})
		close(release)
		// The reads still running when the test failed end now.
		if err := <-committed; err != nil {
			t.Fatal(err)
		}
		s.inCommit = nil
		if kv, err := s.Get(ctx, "k"); err != nil || string(kv.Value) != "new" {
			t.Fatalf("Get after the commit (%s) returned: %q, %v", via, kv.Value, err)
		}
		if _, err := s.Commit(ctx, nil, []Op{Put("k", []byte("old"))}); err != nil {
			t.Fatal(err)
		}
	}
}
