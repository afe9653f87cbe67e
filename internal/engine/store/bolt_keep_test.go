package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// A store that committed records the file as left cleanly (the sidecar,
// bolt_clean.go) when it lets go of the file, once idle or at Close, so
// the next process skips the full check.
func TestBoltKeptFileLeftClean(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "cluster.db")
	s, err := OpenBolt(path, BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	clean := func() bool {
		t.Helper()
		s.sem <- struct{}{}
		defer func() { <-s.sem }()
		if s.keep.h != nil {
			t.Fatal("the file is still kept open")
		}
		now := time.Now()
		h, err := s.open(ctx, false, now, now.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer h.close(false)
		return leftClean(h, path)
	}
	if _, err := s.Commit(ctx, nil, []Op{Put("k", []byte("1"))}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(keepIdle + 50*time.Millisecond)
	if !clean() {
		t.Error("after the store went idle, the sidecar does not match the file")
	}
	if _, err := s.Commit(ctx, nil, []Op{Put("k", []byte("2"))}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !clean() {
		t.Error("after Close, the sidecar does not match the file")
	}
}
