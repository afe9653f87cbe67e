package storetest

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

func getMany(t *testing.T, s store.Store, keys ...string) []store.KV {
	t.Helper()
	kvs, err := s.GetMany(bg, keys...)
	if err != nil {
		t.Fatalf("GetMany(%q): %v", keys, err)
	}
	if len(kvs) != len(keys) {
		t.Fatalf("GetMany(%q) returned %d records, want %d", keys, len(kvs), len(keys))
	}
	return kvs
}

// wantMissing checks GetMany's placeholder for a missing key.
func wantMissing(t *testing.T, got store.KV, key string) {
	t.Helper()
	if got.Key != key || got.Value != nil || got.ModRevision != 0 || got.CreateRevision != 0 || got.Exists() {
		t.Fatalf("missing key %q: got %+v, want {Key: %q} with zero revisions and nil value", key, got, key)
	}
}

// testGetMany: records come back in the order asked, as Get returns them;
// missing keys as placeholders; no keys, no records.
func testGetMany(t *testing.T, s store.Store) {
	r1 := commit(t, s, nil, store.Put("hosts/a", []byte("A")), store.Put("clusters/c", []byte("C")))
	r2 := commit(t, s, nil, store.Put("hosts/a", []byte("A2")), store.Put("empty", nil))
	kvs := getMany(t, s, "clusters/c", "nope", "hosts/a", "empty", "hosts/a", "hosts/")
	wantKV(t, kvs[0], "clusters/c", "C", r1, r1)
	wantMissing(t, kvs[1], "nope")
	wantKV(t, kvs[2], "hosts/a", "A2", r1, r2)
	wantKV(t, kvs[3], "empty", "", r2, r2)
	wantKV(t, kvs[4], "hosts/a", "A2", r1, r2)
	wantMissing(t, kvs[5], "hosts/") // a prefix is a key here, not a range
	if kvs[3].Value == nil || !kvs[3].Exists() || !kvs[0].Exists() {
		t.Fatalf("an empty value must read as present and non-nil: %+v", kvs[3])
	}
	for _, k := range []string{"clusters/c", "hosts/a", "empty"} {
		if one := get(t, s, k); !equalKVs(getMany(t, s, k), []store.KV{one}) {
			t.Fatalf("GetMany(%q) differs from Get: %+v", k, one)
		}
	}
	commit(t, s, []store.Cmp{store.At("hosts/a", kvs[2].ModRevision), store.Absent(kvs[1].Key)}, store.Del("hosts/a"))
	wantMissing(t, getMany(t, s, "hosts/a")[0], "hosts/a")
	if kvs, err := s.GetMany(bg); err != nil || len(kvs) != 0 {
		t.Fatalf("GetMany() = %v, %v, want nothing", kvs, err)
	}
	// The most keys allowed are one read (etcd's transaction limit).
	keys := make([]string, store.MaxGetMany)
	for i := range keys {
		keys[i] = fmt.Sprintf("many/%03d", i)
	}
	commit(t, s, nil, store.Put(keys[7], []byte("7")))
	kvs = getMany(t, s, keys...)
	for i, kv := range kvs {
		if kv.Key != keys[i] || kv.Exists() != (i == 7) {
			t.Fatalf("GetMany of %d keys: record %d = %+v", len(keys), i, kv)
		}
	}
}

// testGetManySnapshot: reads racing commits see one snapshot: keys written
// together always read equal, and a key deleted in the same commits that
// write the pair is never seen beside a pair value it did not go with.
func testGetManySnapshot(t *testing.T, s store.Store) {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := []byte(strconv.Itoa(i))
			ops := []store.Op{store.Put("pair/1", v), store.Put("pair/2", v), store.Put("odd", v)}
			if i%2 == 0 {
				ops[2] = store.Del("odd")
			}
			if _, err := s.Commit(bg, nil, ops); err != nil {
				t.Errorf("Commit: %v", err)
				return
			}
		}
	})
	for range 50 {
		kvs, err := s.GetMany(bg, "pair/1", "odd", "pair/2")
		if err != nil {
			t.Fatalf("GetMany: %v", err)
		}
		a, odd, b := kvs[0], kvs[1], kvs[2]
		if !bytes.Equal(a.Value, b.Value) || a.ModRevision != b.ModRevision {
			t.Fatalf("GetMany saw a torn commit: %+v", kvs)
		}
		n, _ := strconv.Atoi(string(a.Value))
		if a.Exists() && odd.Exists() != (n%2 == 1) || odd.Exists() && !bytes.Equal(odd.Value, a.Value) {
			t.Fatalf("GetMany mixed two snapshots: %+v", kvs)
		}
	}
	close(stop)
	wg.Wait()
}

// testGetManyErrors: invalid keys, too many keys, a canceled context and a
// closed store fail as Get does, and nothing is read.
func testGetManyErrors(t *testing.T, s store.Store) {
	commit(t, s, nil, store.Put("k", []byte("v")))
	for _, keys := range [][]string{{"k", ""}, {"a\x00b"}, {"k", string(make([]byte, store.MaxKeyLen+1))}, make([]string, store.MaxGetMany+1)} {
		if len(keys) > store.MaxGetMany {
			for i := range keys {
				keys[i] = "k"
			}
		}
		kvs, err := s.GetMany(bg, keys...)
		wantErr(t, err, store.ErrInvalid, "")
		if kvs != nil {
			t.Fatalf("GetMany with invalid keys returned %v", kvs)
		}
	}
	ctx, cancel := context.WithCancel(bg)
	cancel()
	_, err := s.GetMany(ctx, "k")
	wantErr(t, err, context.Canceled, "")
	dctx, dcancel := context.WithTimeout(bg, -time.Second)
	defer dcancel()
	_, err = s.GetMany(dctx, "k")
	wantErr(t, err, context.DeadlineExceeded, "")
	// Values are the caller's to change.
	kvs := getMany(t, s, "k", "k")
	copy(kvs[0].Value, "X")
	if string(kvs[1].Value) != "v" || string(get(t, s, "k").Value) != "v" {
		t.Fatal("GetMany returned a shared or the store's own slice")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err = s.GetMany(bg, "k")
	wantErr(t, err, store.ErrClosed, "")
}

// testLeaseGetMany: a key whose lease ended is missing from GetMany too.
func testLeaseGetMany(t *testing.T, s store.Store, l store.Leaser) {
	id, err := l.Grant(bg, time.Second)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	rev := commit(t, s, nil, store.PutLease("hb/n1", []byte("up"), id), store.Put("hosts/n1", []byte("h")))
	kvs := getMany(t, s, "hb/n1", "hosts/n1")
	wantKV(t, kvs[0], "hb/n1", "up", rev, rev)
	if err := l.Revoke(bg, id); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	kvs = getMany(t, s, "hb/n1", "hosts/n1")
	wantMissing(t, kvs[0], "hb/n1")
	wantKV(t, kvs[1], "hosts/n1", "h", rev, rev)
	id, err = l.Grant(bg, time.Second)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	commit(t, s, nil, store.PutLease("hb/n2", []byte("up"), id))
	waitGone(t, s, "hb/n2", 6*time.Second)
	wantMissing(t, getMany(t, s, "hb/n2")[0], "hb/n2")
}
