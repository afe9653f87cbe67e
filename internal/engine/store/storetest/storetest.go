// Package storetest checks that a store.Store keeps the contract of package
// store. Every implementation's tests call Run:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openMine(t) })
//	}
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Run runs the whole contract as subtests. open must return a new, empty
// store for each call; Run closes every store it opens, so open may also
// close it in a cleanup if Close tolerates a second call.
//
// A new store need not be at revision 0 (an etcd prefix starts at etcd's
// current revision), but nothing else may write to the store's revision
// counter while Run runs: the suite checks that every Commit takes exactly
// the next revision. The lease tests run in parallel with each other (each
// on its own store) after the others, and need a store with leases.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Empty", testEmpty},
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"Revisions", testRevisions},
		{"Absent", testAbsent},
		{"At", testAt},
		{"ConflictWritesNothing", testConflictWritesNothing},
		{"AtomicMultiOp", testAtomicMultiOp},
		{"Delete", testDelete},
		{"ListPrefix", testListPrefix},
		{"ListSnapshotRevision", testListSnapshotRevision},
		{"ValuesAreCopies", testValuesAreCopies},
		{"Invalid", testInvalid},
		{"ConcurrentCAS", testConcurrentCAS},
		{"ContextCanceled", testContextCanceled},
		{"Close", testClose},
		{"GetMany", testGetMany},
		{"GetManySnapshot", testGetManySnapshot},
		{"GetManyErrors", testGetManyErrors},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
	leaseTests := []struct {
		name string
		fn   func(t *testing.T, s store.Store, l store.Leaser)
	}{
		{"LeaseCrashedClient", testLeaseCrashedClient},
		{"LeaseKeepAliveRevoke", testLeaseKeepAliveRevoke},
		{"LeaseDetach", testLeaseDetach},
		{"LeaseGetMany", testLeaseGetMany},
	}
	for _, tc := range leaseTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			l, err := AsLeaser(s)
			if err != nil {
				t.Fatal(err)
			}
			tc.fn(t, s, l)
		})
	}
}

var bg = context.Background()

func commit(t *testing.T, s store.Store, cmps []store.Cmp, ops ...store.Op) int64 {
	t.Helper()
	rev, err := s.Commit(bg, cmps, ops)
	if err != nil {
		t.Fatalf("Commit(%v, %v): %v", cmps, ops, err)
	}
	return rev
}

func get(t *testing.T, s store.Store, key string) store.KV {
	t.Helper()
	kv, err := s.Get(bg, key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return kv
}

func list(t *testing.T, s store.Store, prefix string) ([]store.KV, int64) {
	t.Helper()
	kvs, rev, err := s.List(bg, prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return kvs, rev
}

func revision(t *testing.T, s store.Store) int64 {
	t.Helper()
	_, rev := list(t, s, "")
	return rev
}

func wantKV(t *testing.T, got store.KV, key, value string, create, mod int64) {
	t.Helper()
	if got.Key != key || string(got.Value) != value || got.CreateRevision != create || got.ModRevision != mod {
		t.Fatalf("got {%q %q create %d mod %d}, want {%q %q create %d mod %d}",
			got.Key, got.Value, got.CreateRevision, got.ModRevision, key, value, create, mod)
	}
}

func wantErr(t *testing.T, err, target error, mentions string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want one wrapping %q", err, target)
	}
	if mentions != "" && !strings.Contains(err.Error(), mentions) {
		t.Fatalf("error %q does not mention %q", err, mentions)
	}
}

func testEmpty(t *testing.T, s store.Store) {
	kvs, rev := list(t, s, "")
	if len(kvs) != 0 || rev < 0 {
		t.Fatalf("new store: List = %d records at revision %d, want none", len(kvs), rev)
	}
	if r2 := revision(t, s); r2 != rev {
		t.Fatalf("reading changed the revision: %d -> %d", rev, r2)
	}
}

func testGetMissing(t *testing.T, s store.Store) {
	_, err := s.Get(bg, "hosts/nope")
	wantErr(t, err, store.ErrNotFound, `"hosts/nope"`)
}

func testPutGet(t *testing.T, s store.Store) {
	b := revision(t, s)
	if rev := commit(t, s, nil, store.Put("a", []byte("one"))); rev != b+1 {
		t.Fatalf("first commit revision %d, want %d", rev, b+1)
	}
	wantKV(t, get(t, s, "a"), "a", "one", b+1, b+1)
	if rev := commit(t, s, nil, store.Put("a", []byte("two"))); rev != b+2 {
		t.Fatalf("second commit revision %d, want %d", rev, b+2)
	}
	wantKV(t, get(t, s, "a"), "a", "two", b+1, b+2)
	commit(t, s, nil, store.Put("b", nil))
	wantKV(t, get(t, s, "b"), "b", "", b+3, b+3)
	wantKV(t, get(t, s, "a"), "a", "two", b+1, b+2)
	// Keys are bytes: separators, UTF-8 and high bytes are fine.
	for _, k := range []string{"x/y/z", "vm/ünïcode/☃", "\xff\xfe", " spaced key "} {
		commit(t, s, nil, store.Put(k, []byte(k)))
		if got := get(t, s, k); string(got.Value) != k {
			t.Fatalf("Get(%q) = %q", k, got.Value)
		}
	}
}

func testRevisions(t *testing.T, s store.Store) {
	b := revision(t, s)
	for i := int64(1); i <= 20; i++ {
		key := fmt.Sprintf("k%d", i%3)
		rev := commit(t, s, nil, store.Put(key, []byte(strconv.FormatInt(i, 10))))
		if rev != b+i {
			t.Fatalf("commit %d returned revision %d, want %d", i, rev, b+i)
		}
		if kv := get(t, s, key); kv.ModRevision != b+i {
			t.Fatalf("after commit %d, %s has mod revision %d", i, key, kv.ModRevision)
		}
		if r := revision(t, s); r != b+i {
			t.Fatalf("after commit %d, List revision %d", i, r)
		}
	}
	for k, create := range map[string]int64{"k1": b + 1, "k2": b + 2, "k0": b + 3} {
		if kv := get(t, s, k); kv.CreateRevision != create {
			t.Fatalf("%s create revision %d, want %d", k, kv.CreateRevision, create)
		}
	}
}

func testAbsent(t *testing.T, s store.Store) {
	rev := commit(t, s, []store.Cmp{store.Absent("lock")}, store.Put("lock", []byte("me")))
	_, err := s.Commit(bg, []store.Cmp{store.Absent("lock")}, []store.Op{store.Put("lock", []byte("you"))})
	wantErr(t, err, store.ErrConflict, `"lock"`)
	wantKV(t, get(t, s, "lock"), "lock", "me", rev, rev)
	// Absent on another key holds.
	commit(t, s, []store.Cmp{store.Absent("other")}, store.Put("x", nil))
}

func testAt(t *testing.T, s store.Store) {
	r1 := commit(t, s, nil, store.Put("c", []byte("1")))
	r2 := commit(t, s, []store.Cmp{store.At("c", r1)}, store.Put("c", []byte("2")))
	// Stale revision.
	_, err := s.Commit(bg, []store.Cmp{store.At("c", r1)}, []store.Op{store.Put("c", []byte("3"))})
	wantErr(t, err, store.ErrConflict, `"c"`)
	// Missing key.
	_, err = s.Commit(bg, []store.Cmp{store.At("missing", r1)}, []store.Op{store.Put("c", []byte("3"))})
	wantErr(t, err, store.ErrConflict, `"missing"`)
	// At a revision of another commit that did not touch the key.
	r3 := commit(t, s, nil, store.Put("d", nil))
	_, err = s.Commit(bg, []store.Cmp{store.At("c", r3)}, []store.Op{store.Put("c", []byte("3"))})
	wantErr(t, err, store.ErrConflict, "")
	wantKV(t, get(t, s, "c"), "c", "2", r1, r2)
	// A comparison on a key the commit does not write.
	commit(t, s, []store.Cmp{store.At("c", r2), store.At("d", r3)}, store.Put("e", nil))
}

func testConflictWritesNothing(t *testing.T, s store.Store) {
	ra := commit(t, s, nil, store.Put("a", []byte("a1")))
	rb := commit(t, s, nil, store.Put("b", []byte("b1")))
	before, rev := list(t, s, "")
	// First comparison holds, the last fails: none of the ops may land.
	_, err := s.Commit(bg,
		[]store.Cmp{store.At("a", ra), store.Absent("new"), store.At("b", ra)},
		[]store.Op{store.Put("a", []byte("a2")), store.Del("b"), store.Put("new", []byte("n"))})
	wantErr(t, err, store.ErrConflict, `"b"`)
	after, rev2 := list(t, s, "")
	if rev2 != rev || !equalKVs(before, after) {
		t.Fatalf("failed commit changed the store: revision %d -> %d, records %v -> %v", rev, rev2, before, after)
	}
	// No revision was spent: the next commit is rev+1.
	if r := commit(t, s, []store.Cmp{store.At("b", rb)}, store.Put("b", []byte("b2"))); r != rev+1 {
		t.Fatalf("commit after a conflict got revision %d, want %d", r, rev+1)
	}
}

func testAtomicMultiOp(t *testing.T, s store.Store) {
	r1 := commit(t, s, nil, store.Put("vm/1", []byte("old")), store.Put("gone", []byte("x")))
	rev := commit(t, s, []store.Cmp{store.Absent("vm/2")},
		store.Put("vm/1", []byte("new")), store.Put("vm/2", []byte("two")),
		store.Put("event/1", []byte("moved")), store.Del("gone"))
	if rev != r1+1 {
		t.Fatalf("revision %d, want %d", rev, r1+1)
	}
	wantKV(t, get(t, s, "vm/1"), "vm/1", "new", r1, rev)
	wantKV(t, get(t, s, "vm/2"), "vm/2", "two", rev, rev)
	wantKV(t, get(t, s, "event/1"), "event/1", "moved", rev, rev)
	if _, err := s.Get(bg, "gone"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted key: Get error %v", err)
	}
}

func testDelete(t *testing.T, s store.Store) {
	r1 := commit(t, s, nil, store.Put("k", []byte("v")), store.Put("keep", nil))
	r2 := commit(t, s, []store.Cmp{store.At("k", r1)}, store.Del("k"))
	if r2 != r1+1 {
		t.Fatalf("delete commit revision %d, want %d", r2, r1+1)
	}
	_, err := s.Get(bg, "k")
	wantErr(t, err, store.ErrNotFound, `"k"`)
	if kvs, rev := list(t, s, ""); len(kvs) != 1 || kvs[0].Key != "keep" || rev != r2 {
		t.Fatalf("after delete: List = %v at %d", kvs, rev)
	}
	// The deleted key compares as absent, not at its old revision.
	_, err = s.Commit(bg, []store.Cmp{store.At("k", r1)}, []store.Op{store.Put("k", nil)})
	wantErr(t, err, store.ErrConflict, `"k"`)
	// Deleting a missing key is no error, and still a new revision.
	r3, err := s.Commit(bg, nil, []store.Op{store.Del("never")})
	if err != nil || r3 != r2+1 {
		t.Fatalf("deleting a missing key: revision %d, error %v", r3, err)
	}
	// Re-creating starts a new life: a new create revision.
	r4 := commit(t, s, []store.Cmp{store.Absent("k")}, store.Put("k", []byte("again")))
	wantKV(t, get(t, s, "k"), "k", "again", r4, r4)
}

func testListPrefix(t *testing.T, s store.Store) {
	b := revision(t, s)
	keys := []string{"a/b/c", "a0", "a/", "b", "a", "a/b", "ab", "a/\xff", "a/b/"}
	for i, k := range keys {
		commit(t, s, nil, store.Put(k, []byte{byte(i)}))
	}
	cases := map[string][]string{
		"":     {"a", "a/", "a/b", "a/b/", "a/b/c", "a/\xff", "a0", "ab", "b"},
		"a/":   {"a/", "a/b", "a/b/", "a/b/c", "a/\xff"},
		"a/b/": {"a/b/", "a/b/c"},
		"a/b":  {"a/b", "a/b/", "a/b/c"},
		"b":    {"b"},
		"c":    nil,
		"a/b0": nil,
	}
	for prefix, want := range cases {
		kvs, rev := list(t, s, prefix)
		if rev != b+int64(len(keys)) {
			t.Fatalf("List(%q) revision %d, want %d", prefix, rev, b+int64(len(keys)))
		}
		var got []string
		for _, kv := range kvs {
			got = append(got, kv.Key)
			i := slices.Index(keys, kv.Key)
			if !bytes.Equal(kv.Value, []byte{byte(i)}) || kv.ModRevision != b+int64(i+1) || kv.CreateRevision != b+int64(i+1) {
				t.Fatalf("List(%q): record %q = %v, want value %d at revision %d", prefix, kv.Key, kv, i, b+int64(i+1))
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("List(%q) = %q, want %q", prefix, got, want)
		}
	}
}

func testListSnapshotRevision(t *testing.T, s store.Store) {
	commit(t, s, nil, store.Put("vms/a", nil), store.Put("vms/b", nil))
	commit(t, s, nil, store.Put("hosts/h1", nil))
	r := commit(t, s, nil, store.Put("hosts/h2", nil))
	// The revision is the store's, not the newest record's in the prefix.
	kvs, rev := list(t, s, "vms/")
	if len(kvs) != 2 || rev != r {
		t.Fatalf("List(vms/) = %d records at revision %d, want 2 at %d", len(kvs), rev, r)
	}
	// A commit guarded by that revision's records succeeds.
	commit(t, s, []store.Cmp{store.At("vms/a", kvs[0].ModRevision), store.At("vms/b", kvs[1].ModRevision)},
		store.Put("vms/c", nil))
	// Lists racing commits always see a consistent snapshot: both keys of
	// a pair are written together, so a list sees them equal.
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
			if _, err := s.Commit(bg, nil, []store.Op{store.Put("pair/1", v), store.Put("pair/2", v)}); err != nil {
				t.Errorf("Commit: %v", err)
				return
			}
		}
	})
	for range 50 {
		kvs, rev, err := s.List(bg, "pair/")
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(kvs) == 2 && (!bytes.Equal(kvs[0].Value, kvs[1].Value) || kvs[0].ModRevision != kvs[1].ModRevision || kvs[0].ModRevision > rev) {
			t.Fatalf("List saw a torn commit at revision %d: %v", rev, kvs)
		}
	}
	close(stop)
	wg.Wait()
}

func testValuesAreCopies(t *testing.T, s store.Store) {
	in := []byte("original")
	commit(t, s, nil, store.Put("k", in))
	copy(in, "XXXXXXXX")
	got := get(t, s, "k")
	if string(got.Value) != "original" {
		t.Fatalf("store kept the caller's slice: %q", got.Value)
	}
	copy(got.Value, "YYYYYYYY")
	kvs, _ := list(t, s, "k")
	if string(get(t, s, "k").Value) != "original" || string(kvs[0].Value) != "original" {
		t.Fatal("Get returned the store's own slice")
	}
	copy(kvs[0].Value, "ZZZZZZZZ")
	if string(get(t, s, "k").Value) != "original" {
		t.Fatal("List returned the store's own slice")
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	commit(t, s, nil, store.Put("big", big))
	if !bytes.Equal(get(t, s, "big").Value, big) {
		t.Fatal("1 MiB value came back different")
	}
}

func testInvalid(t *testing.T, s store.Store) {
	b := revision(t, s)
	long := strings.Repeat("k", store.MaxKeyLen+1)
	for _, key := range []string{"", "a\x00b", long} {
		_, err := s.Get(bg, key)
		wantErr(t, err, store.ErrInvalid, "")
		_, err = s.Commit(bg, nil, []store.Op{store.Put(key, nil)})
		wantErr(t, err, store.ErrInvalid, "")
		_, err = s.Commit(bg, nil, []store.Op{store.Del(key)})
		wantErr(t, err, store.ErrInvalid, "")
		_, err = s.Commit(bg, []store.Cmp{store.Absent(key)}, []store.Op{store.Put("ok", nil)})
		wantErr(t, err, store.ErrInvalid, "")
	}
	_, _, err := s.List(bg, "a\x00")
	wantErr(t, err, store.ErrInvalid, "")
	_, err = s.Commit(bg, []store.Cmp{store.At("ok", -1)}, []store.Op{store.Put("ok", nil)})
	wantErr(t, err, store.ErrInvalid, "")
	_, err = s.Commit(bg, nil, nil)
	wantErr(t, err, store.ErrInvalid, "")
	_, err = s.Commit(bg, []store.Cmp{store.Absent("ok")}, nil)
	wantErr(t, err, store.ErrInvalid, "")
	_, err = s.Commit(bg, nil, []store.Op{store.Put("dup", nil), store.Del("dup")})
	wantErr(t, err, store.ErrInvalid, `"dup"`)
	_, err = s.Commit(bg, nil, []store.Op{store.PutLease("ok", nil, -1)})
	wantErr(t, err, store.ErrInvalid, `"ok"`)
	_, err = s.Commit(bg, nil, []store.Op{{Key: "ok", Delete: true, Lease: 1}})
	wantErr(t, err, store.ErrInvalid, `"ok"`)
	if kvs, rev := list(t, s, ""); len(kvs) != 0 || rev != b {
		t.Fatalf("invalid commits wrote: %v at revision %d", kvs, rev)
	}
	// A key of exactly MaxKeyLen bytes is fine.
	commit(t, s, nil, store.Put(long[:store.MaxKeyLen], nil))
}

// testConcurrentCAS: many goroutines increment one counter with
// read-compare-write; no increment may be lost and every successful commit
// takes the next revision.
func testConcurrentCAS(t *testing.T, s store.Store) {
	const workers, each = 8, 25
	b := revision(t, s)
	var (
		mu   sync.Mutex
		revs []int64
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for done := 0; done < each; {
				rev, err := Increment(bg, s, "counter")
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				if err != nil {
					t.Errorf("increment: %v", err)
					return
				}
				mu.Lock()
				revs = append(revs, rev)
				mu.Unlock()
				done++
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	kv := get(t, s, "counter")
	if n, _ := strconv.Atoi(string(kv.Value)); n != workers*each {
		t.Fatalf("counter = %q, want %d (lost updates)", kv.Value, workers*each)
	}
	slices.Sort(revs)
	for i, r := range revs {
		if r != b+int64(i+1) {
			t.Fatalf("commit revisions are not %d..%d: %v", b+1, b+int64(len(revs)), revs)
		}
	}
	if kv.ModRevision != b+workers*each || kv.CreateRevision != b+1 {
		t.Fatalf("counter revisions create %d mod %d, want %d and %d", kv.CreateRevision, kv.ModRevision, b+1, b+workers*each)
	}
}

// Increment adds one to the decimal counter at key with one read and one
// compare-and-swap commit, returning the commit's revision. It returns an
// error wrapping store.ErrConflict when another writer came first; the
// caller retries. Tests of other stores and processes use it.
func Increment(ctx context.Context, s store.Store, key string) (int64, error) {
	kv, err := s.Get(ctx, key)
	cmp := store.At(key, kv.ModRevision)
	n := 0
	switch {
	case errors.Is(err, store.ErrNotFound):
		cmp = store.Absent(key)
	case err != nil:
		return 0, err
	default:
		if n, err = strconv.Atoi(string(kv.Value)); err != nil {
			return 0, fmt.Errorf("counter %q holds %q: %w", key, kv.Value, err)
		}
	}
	return s.Commit(ctx, []store.Cmp{cmp}, []store.Op{store.Put(key, []byte(strconv.Itoa(n+1)))})
}

func testContextCanceled(t *testing.T, s store.Store) {
	r1 := commit(t, s, nil, store.Put("k", []byte("v")))
	ctx, cancel := context.WithCancel(bg)
	cancel()
	_, err := s.Get(ctx, "k")
	wantErr(t, err, context.Canceled, "")
	_, _, err = s.List(ctx, "")
	wantErr(t, err, context.Canceled, "")
	_, err = s.Commit(ctx, nil, []store.Op{store.Put("k", []byte("w")), store.Put("new", nil)})
	wantErr(t, err, context.Canceled, "")
	if kvs, rev := list(t, s, ""); len(kvs) != 1 || rev != r1 || string(kvs[0].Value) != "v" {
		t.Fatalf("a canceled commit wrote: %v at revision %d", kvs, rev)
	}
	dctx, dcancel := context.WithTimeout(bg, -1)
	defer dcancel()
	_, err = s.Get(dctx, "k")
	wantErr(t, err, context.DeadlineExceeded, "")
}

func testClose(t *testing.T, s store.Store) {
	commit(t, s, nil, store.Put("k", nil))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := s.Get(bg, "k")
	wantErr(t, err, store.ErrClosed, "")
	_, _, err = s.List(bg, "")
	wantErr(t, err, store.ErrClosed, "")
	_, err = s.Commit(bg, nil, []store.Op{store.Put("k", nil)})
	wantErr(t, err, store.ErrClosed, "")
}

func equalKVs(a, b []store.KV) bool {
	return slices.EqualFunc(a, b, func(x, y store.KV) bool {
		return x.Key == y.Key && bytes.Equal(x.Value, y.Value) &&
			x.ModRevision == y.ModRevision && x.CreateRevision == y.CreateRevision
	})
}

// waitGone polls until key reads as missing, failing after limit.
func waitGone(t *testing.T, s store.Store, key string, limit time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		_, err := s.Get(bg, key)
		if errors.Is(err, store.ErrNotFound) {
			return time.Now()
		}
		if err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q still there %s after its lease should have expired", key, limit)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// testLeaseCrashedClient: a client takes a lock (a key under a lease,
// created with Absent) and writes an intent record in the same commit, then
// crashes: it never renews or revokes. Until the TTL the lock keeps others
// out; then it vanishes while the intent record (no lease) stays for a
// successor, whose lock gets a larger CreateRevision: a fencing token.
func testLeaseCrashedClient(t *testing.T, s store.Store, l store.Leaser) {
	granted := time.Now()
	id, err := l.Grant(bg, time.Second)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	if id == 0 {
		t.Fatal("Grant returned lease 0")
	}
	rev := commit(t, s, []store.Cmp{store.Absent("locks/vm1")},
		store.PutLease("locks/vm1", []byte("client-a"), id), store.Put("intents/vm1", []byte("migrate")))
	wantKV(t, get(t, s, "locks/vm1"), "locks/vm1", "client-a", rev, rev)
	// Another client cannot take the lock while the lease lives.
	other, err := l.Grant(bg, 5*time.Second)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	_, err = s.Commit(bg, []store.Cmp{store.Absent("locks/vm1")}, []store.Op{store.PutLease("locks/vm1", []byte("client-b"), other)})
	wantErr(t, err, store.ErrConflict, `"locks/vm1"`)

	gone := waitGone(t, s, "locks/vm1", 6*time.Second)
	if d := gone.Sub(granted); d < time.Second-50*time.Millisecond {
		t.Fatalf("a lease of 1s expired after %s", d)
	}
	// Gone from List too; the record without a lease stays.
	kvs, _ := list(t, s, "")
	if len(kvs) != 1 || kvs[0].Key != "intents/vm1" || string(kvs[0].Value) != "migrate" {
		t.Fatalf("after the lease expired: List = %v, want only the intent", kvs)
	}
	// The expired lease is gone for good.
	err = l.KeepAlive(bg, id)
	wantErr(t, err, store.ErrLeaseNotFound, "")
	_, err = s.Commit(bg, nil, []store.Op{store.PutLease("locks/vm2", nil, id), store.Put("x", nil)})
	wantErr(t, err, store.ErrLeaseNotFound, "")
	if _, err := s.Get(bg, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a commit refused for its lease wrote: %v", err)
	}
	// The successor takes the lock: Absent holds; the new token is larger.
	rev2 := commit(t, s, []store.Cmp{store.Absent("locks/vm1"), store.At("intents/vm1", rev)},
		store.PutLease("locks/vm1", []byte("client-b"), other))
	if kv := get(t, s, "locks/vm1"); kv.CreateRevision != rev2 || rev2 <= rev {
		t.Fatalf("successor's lock: create revision %d (commit %d), previous holder's %d", kv.CreateRevision, rev2, rev)
	}
	if err := l.Revoke(bg, other); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
}

// testLeaseKeepAliveRevoke: renewals keep a lease past its TTL; Revoke
// deletes its keys at once, as a new revision.
func testLeaseKeepAliveRevoke(t *testing.T, s store.Store, l store.Leaser) {
	id, err := l.Grant(bg, time.Second)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	commit(t, s, nil, store.PutLease("hb/node1", []byte("alive"), id), store.PutLease("hb/node1/slot", []byte("3"), id))
	end := time.Now().Add(2200 * time.Millisecond)
	for time.Now().Before(end) {
		if err := l.KeepAlive(bg, id); err != nil {
			t.Fatalf("KeepAlive: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if kvs, _ := list(t, s, "hb/"); len(kvs) != 2 {
		t.Fatalf("kept-alive keys: List = %v, want both", kvs)
	}
	before := revision(t, s)
	if err := l.Revoke(bg, id); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if kvs, rev := list(t, s, "hb/"); len(kvs) != 0 || rev <= before {
		t.Fatalf("after Revoke: List = %v at revision %d (before %d)", kvs, rev, before)
	}
	if err := l.Revoke(bg, id); err != nil {
		t.Fatalf("second Revoke: %v", err)
	}
	wantErr(t, l.KeepAlive(bg, id), store.ErrLeaseNotFound, "")
	// A lease with no keys expires quietly.
	id2, err := l.Grant(bg, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Revoke(bg, id2); err != nil {
		t.Fatalf("Revoke of a lease without keys: %v", err)
	}
}

// testLeaseDetach: a put without a lease detaches the key (etcd's rule);
// a deleted key does not come back when its lease ends.
func testLeaseDetach(t *testing.T, s store.Store, l store.Leaser) {
	id, err := l.Grant(bg, 30*time.Second)
	if err != nil {
		t.Fatalf("Grant: %v", err)
	}
	commit(t, s, nil, store.PutLease("a", []byte("1"), id), store.PutLease("b", []byte("1"), id), store.PutLease("c", []byte("1"), id))
	commit(t, s, nil, store.Put("a", []byte("2")), store.Del("b"))
	if err := l.Revoke(bg, id); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if string(get(t, s, "a").Value) != "2" {
		t.Fatal("a detached key changed")
	}
	for _, k := range []string{"b", "c"} {
		if _, err := s.Get(bg, k); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get(%q) after revoke: %v", k, err)
		}
	}
}

// AsLeaser returns s as a store.Leaser, or an error wrapping
// store.ErrInvalid for a store without leases (none in this module).
func AsLeaser(s store.Store) (store.Leaser, error) {
	if l, ok := s.(store.Leaser); ok {
		return l, nil
	}
	return nil, fmt.Errorf("store %T has no leases: %w", s, store.ErrInvalid)
}
