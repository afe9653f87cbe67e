package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/etcdtest"
)

// Etcd's Watch signals once at the start, then after each commit under the
// prefix and not for one elsewhere; it closes its channel when its context
// ends.
func TestEtcdWatch(t *testing.T) {
	t.Parallel()
	c := etcdtest.Start(t, etcdtest.Options{})
	s := openEtcd(t, store.EtcdOptions{Endpoints: c.Endpoints(), Prefix: uniquePrefix(t)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := s.Watch(ctx, "node-work/A/req/")
	recv := func(want bool, what string) {
		t.Helper()
		select {
		case _, ok := <-ch:
			if !ok {
				t.Fatalf("%s: the channel closed", what)
			}
			if !want {
				t.Fatalf("%s: a signal, want none", what)
			}
		case <-time.After(500 * time.Millisecond):
			if want {
				t.Fatalf("%s: no signal within 500ms", what)
			}
		}
	}
	recv(true, "start")
	// Let the watch be established (its start signal comes before).
	time.Sleep(200 * time.Millisecond)
	recv(false, "nothing committed")
	if _, err := s.Commit(ctx, nil, []store.Op{store.Put("node-work/B/req/x", []byte("1"))}); err != nil {
		t.Fatal(err)
	}
	recv(false, "a commit under another prefix")
	if _, err := s.Commit(ctx, nil, []store.Op{store.Put("node-work/A/req/x", []byte("1"))}); err != nil {
		t.Fatal(err)
	}
	recv(true, "a put under the prefix")
	if _, err := s.Commit(ctx, nil, []store.Op{store.Del("node-work/A/req/x")}); err != nil {
		t.Fatal(err)
	}
	recv(true, "a delete under the prefix")
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			// A last signal may be in the buffer; then it closes.
			if _, ok := <-ch; ok {
				t.Fatal("a signal after the context ended")
			}
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the channel did not close after the context ended")
	}
}
