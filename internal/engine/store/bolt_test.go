package store_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/storetest"
)

var bg = context.Background()

func openBolt(t testing.TB, path string, opts store.BoltOptions) *store.Bolt {
	t.Helper()
	b, err := store.OpenBolt(path, opts)
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestBoltContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openBolt(t, filepath.Join(t.TempDir(), "kayo.db"), store.BoltOptions{NoSync: true})
	})
}

// The contract once more with fsync on, as in production.
func TestBoltContractSync(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("short")
	}
	storetest.Run(t, func(t *testing.T) store.Store {
		return openBolt(t, filepath.Join(t.TempDir(), "kayo.db"), store.BoltOptions{})
	})
}

func TestBoltPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kayo.db")
	b := openBolt(t, path, store.BoltOptions{})
	if _, err := b.Commit(bg, nil, []store.Op{store.Put("a", []byte("1")), store.Put("b", []byte("2"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(bg, nil, []store.Op{store.Put("a", []byte("3"))}); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	b2 := openBolt(t, path, store.BoltOptions{})
	kv, err := b2.Get(bg, "a")
	if err != nil || string(kv.Value) != "3" || kv.CreateRevision != 1 || kv.ModRevision != 2 {
		t.Fatalf("after reopen: %+v, %v", kv, err)
	}
	if _, rev, err := b2.List(bg, ""); err != nil || rev != 2 {
		t.Fatalf("after reopen: revision %d, %v", rev, err)
	}
	if got := b2.Path(); got != path {
		t.Fatalf("Path() = %q", got)
	}
}

// Operations in quick succession share one open of the file; once they
// stop, the file is free within the idle time: another process can lock
// it.
func TestBoltReleasesFileWhenIdle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kayo.db")
	b := openBolt(t, path, store.BoltOptions{NoSync: true})
	opens := store.Opens(b)
	for i := range 20 {
		if _, err := b.Commit(bg, nil, []store.Op{store.Put("k", []byte(fmt.Sprint(i)))}); err != nil {
			t.Fatal(err)
		}
		if kv, err := b.Get(bg, "k"); err != nil || string(kv.Value) != fmt.Sprint(i) {
			t.Fatalf("Get: %q, %v", kv.Value, err)
		}
	}
	if n := store.Opens(b) - opens; n > 2 {
		t.Errorf("40 operations back to back opened the file %d times, want 1 (2 if one hit the hold limit)", n)
	}
	start := time.Now()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("the store still holds %s a second after its last operation: %v", path, err)
	}
	_ = db.Close()
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("another open waited %v for the file after the store's last operation, want a few ms", d)
	}
	// Close lets go of the file at once.
	if _, err := b.Get(bg, "k"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Millisecond})
	if err != nil {
		t.Fatalf("the store still holds %s after Close: %v", path, err)
	}
	_ = db.Close()
}

func TestBoltRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.OpenBolt(junk, store.BoltOptions{}); err == nil {
		t.Fatal("OpenBolt accepted a file that is no bbolt database")
	}
	other := filepath.Join(dir, "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err }); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	if _, err := store.OpenBolt(other, store.BoltOptions{}); err == nil || !strings.Contains(err.Error(), "not a kayo cluster database") {
		t.Fatalf("OpenBolt on a foreign bbolt file: %v", err)
	}
	if _, err := store.OpenBolt(filepath.Join(dir, "no/such/dir/kayo.db"), store.BoltOptions{}); err == nil {
		t.Fatal("OpenBolt in a missing directory succeeded")
	}
}

// holdFile takes the database's lock the way another process would.
func holdFile(t *testing.T, path string) (release func()) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = db.Close() }) }
	t.Cleanup(release)
	return release
}

type waitLog struct {
	mu     sync.Mutex
	waited []time.Duration
	limit  time.Duration
}

func (w *waitLog) onWait(_ context.Context, waited, limit time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waited = append(w.waited, waited)
	w.limit = limit
}

func (w *waitLog) calls() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.waited...)
}

func TestBoltLockTimeout(t *testing.T) {
	defer store.SetWaitNotifyEvery(100 * time.Millisecond)()
	path := filepath.Join(t.TempDir(), "kayo.db")
	var w waitLog
	b := openBolt(t, path, store.BoltOptions{LockTimeout: 300 * time.Millisecond, OnWait: w.onWait, NoSync: true})
	holdFile(t, path)

	for _, op := range []struct {
		name string
		run  func() error
	}{
		{"Get", func() error { _, err := b.Get(bg, "k"); return err }},
		{"Commit", func() error { _, err := b.Commit(bg, nil, []store.Op{store.Put("k", nil)}); return err }},
	} {
		w = waitLog{}
		start := time.Now()
		err := op.run()
		elapsed := time.Since(start)
		if !errors.Is(err, store.ErrLockTimeout) {
			t.Fatalf("%s: error %v, want ErrLockTimeout", op.name, err)
		}
		for _, want := range []string{path, "300ms", "another process", "timed out waiting for the cluster database"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not mention %q", op.name, err, want)
			}
		}
		if elapsed < 300*time.Millisecond || elapsed > 2*time.Second {
			t.Errorf("%s gave up after %v, want about 300ms", op.name, elapsed)
		}
		calls := w.calls()
		// Once when waiting starts, then every 100ms (as set above).
		if len(calls) < 2 || len(calls) > 4 || calls[0] > 50*time.Millisecond || w.limit != 300*time.Millisecond {
			t.Errorf("%s: OnWait calls %v (limit %v), want one near 0 then about every 100ms", op.name, calls, w.limit)
		}
		t.Logf("%s: %v after %v; OnWait at %v", op.name, err, elapsed.Round(time.Millisecond), calls)
	}
}

func TestBoltOnWaitAtMostOncePerSecond(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kayo.db")
	var w waitLog
	b := openBolt(t, path, store.BoltOptions{LockTimeout: 400 * time.Millisecond, OnWait: w.onWait, NoSync: true})
	holdFile(t, path)
	if _, err := b.Get(bg, "k"); !errors.Is(err, store.ErrLockTimeout) {
		t.Fatalf("Get: %v", err)
	}
	if calls := w.calls(); len(calls) != 1 {
		t.Fatalf("OnWait called %d times in 400ms: %v", len(calls), calls)
	}
}

// A holder that lets go within the timeout: the operation waits, then runs.
func TestBoltWaitsForHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kayo.db")
	var w waitLog
	b := openBolt(t, path, store.BoltOptions{LockTimeout: 5 * time.Second, OnWait: w.onWait, NoSync: true})
	release := holdFile(t, path)
	time.AfterFunc(150*time.Millisecond, release)
	start := time.Now()
	rev, err := b.Commit(bg, nil, []store.Op{store.Put("k", []byte("v"))})
	if err != nil || rev != 1 {
		t.Fatalf("Commit: %d, %v", rev, err)
	}
	if d := time.Since(start); d < 150*time.Millisecond || d > 2*time.Second {
		t.Errorf("Commit took %v, want a little over 150ms", d)
	}
	if len(w.calls()) != 1 {
		t.Errorf("OnWait calls %v, want 1", w.calls())
	}
}

// While one goroutine waits for the file, others of the process queue
// behind it and all complete once the file is free.
func TestBoltQueuedGoroutines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kayo.db")
	b := openBolt(t, path, store.BoltOptions{LockTimeout: 5 * time.Second, NoSync: true})
	release := holdFile(t, path)
	time.AfterFunc(100*time.Millisecond, release)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if _, err := b.Commit(bg, nil, []store.Op{store.Put(fmt.Sprint("k", i), nil)}); err != nil {
				t.Errorf("Commit: %v", err)
			}
		})
	}
	wg.Wait()
	if kvs, rev, err := b.List(bg, ""); err != nil || len(kvs) != 10 || rev != 10 {
		t.Fatalf("List: %d records at %d, %v", len(kvs), rev, err)
	}
}

// Two stores on one file in one process take turns instead of
// conflicting on the file lock.
func TestBoltTwoStoresOneProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kayo.db")
	a := openBolt(t, path, store.BoltOptions{NoSync: true, LockTimeout: 2 * time.Second})
	var waits atomic.Int32
	onWait := func(context.Context, time.Duration, time.Duration) { waits.Add(1) }
	c := openBolt(t, filepath.Join(filepath.Dir(path), ".", "kayo.db"), store.BoltOptions{NoSync: true, OnWait: onWait})
	var wg sync.WaitGroup
	for _, s := range []*store.Bolt{a, c, a, c} {
		wg.Go(func() {
			for done := 0; done < 50; {
				_, err := storetest.Increment(bg, s, "counter")
				if errors.Is(err, store.ErrConflict) {
					continue
				}
				if err != nil {
					t.Errorf("increment: %v", err)
					return
				}
				done++
			}
		})
	}
	wg.Wait()
	if kv, err := a.Get(bg, "counter"); err != nil || string(kv.Value) != "200" {
		t.Fatalf("counter %q, %v", kv.Value, err)
	}
	if n := waits.Load(); n != 0 {
		t.Fatalf("stores of one process waited for each other's file lock %d times", n)
	}
}

func TestBoltContextCancelWhileWaiting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kayo.db")
	var w waitLog
	b := openBolt(t, path, store.BoltOptions{LockTimeout: 5 * time.Second, OnWait: w.onWait, NoSync: true})
	holdFile(t, path)
	ctx, cancel := context.WithTimeout(bg, 80*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := b.Commit(ctx, nil, []store.Op{store.Put("k", nil)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Commit: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Commit returned %v after its context ended", d-80*time.Millisecond)
	}
	if len(w.calls()) != 1 {
		t.Errorf("OnWait calls %v, want 1", w.calls())
	}
}

// Helper processes for the multi-process and crash tests: the test binary
// re-executed with kayoHelperEnv set runs one of these instead of tests.
const kayoHelperEnv = "KAYO_STORE_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(kayoHelperEnv); mode != "" {
		os.Exit(helperMain(mode, os.Getenv("KAYO_STORE_PATH")))
	}
	os.Exit(m.Run())
}

func helperMain(mode, path string) int {
	b, err := store.OpenBolt(path, store.BoltOptions{LockTimeout: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	switch mode {
	case "increment200":
		// Start together: wait for the parent's go.
		fmt.Println("ready")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		t0 := time.Now()
		conflicts := 0
		for done := 0; done < 200; {
			_, err := storetest.Increment(bg, b, "counter")
			switch {
			case errors.Is(err, store.ErrConflict):
				conflicts++
			case err != nil:
				fmt.Fprintln(os.Stderr, err)
				return 1
			default:
				done++
			}
		}
		fmt.Printf("done conflicts=%d in %v\n", conflicts, time.Since(t0).Round(time.Millisecond))
		return 0
	case "readers":
		return readersMain(b)
	case "crashloop":
		kv, err := b.Get(bg, "counter")
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("start %s %d\n", orZero(kv.Value), kv.ModRevision)
		for range 100000 {
			rev, err := storetest.Increment(bg, b, "counter")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			// Acknowledged: the commit is durable before this line is written.
			fmt.Printf("ack %d\n", rev)
		}
		return 0
	}
	return 3
}

func orZero(v []byte) string {
	if len(v) == 0 {
		return "0"
	}
	return string(v)
}

func helper(t *testing.T, mode, path string) *exec.Cmd {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), kayoHelperEnv+"="+mode, "KAYO_STORE_PATH="+path,
		"GORACE=atexit_sleep_ms=0") // the race detector otherwise idles 1s at exit
	cmd.Stderr = os.Stderr
	return cmd
}

// Two processes increment one counter 200 times each on the same file.
func TestBoltMultiProcess(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kayo.db")
	openBolt(t, path, store.BoltOptions{}) // create it
	var (
		cmds  []*exec.Cmd
		outs  []*bufio.Scanner
		gos   []io.WriteCloser
		start time.Time
	)
	for range 2 {
		cmd := helper(t, "increment200", path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		cmds, outs, gos = append(cmds, cmd), append(outs, bufio.NewScanner(stdout)), append(gos, stdin)
	}
	for i, out := range outs {
		if !out.Scan() || out.Text() != "ready" {
			t.Fatalf("helper %d did not get ready: %q %v", i, out.Text(), out.Err())
		}
	}
	start = time.Now()
	for _, g := range gos {
		_, _ = io.WriteString(g, "go\n")
	}
	for i, cmd := range cmds {
		var said []string
		for outs[i].Scan() {
			said = append(said, outs[i].Text())
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v", i, err)
		}
		t.Logf("helper %d: %s", i, strings.Join(said, "; "))
	}
	t.Logf("2 processes x 200 increments: %v", time.Since(start).Round(time.Millisecond))
	b := openBolt(t, path, store.BoltOptions{})
	kv, err := b.Get(bg, "counter")
	if err != nil || string(kv.Value) != "400" || kv.ModRevision != 400 {
		t.Fatalf("counter = %q at revision %d (%v), want 400 at 400", kv.Value, kv.ModRevision, err)
	}
}

// A process committing in a loop is killed at random moments; the file must
// open afterwards, hold every acknowledged commit and stay consistent.
func TestBoltCrash(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "kayo.db")
	openBolt(t, path, store.BoltOptions{})
	lastAck := int64(0)
	for round := range 6 {
		cmd := helper(t, "crashloop", path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		lines := make(chan string)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// Kill at a random moment after the first acknowledgement.
		var killed atomic.Bool
		first := true
		acks := 0
		for line := range lines {
			f := strings.Fields(line)
			n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
			if err != nil {
				t.Fatalf("helper said %q", line)
			}
			if f[0] == "start" {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				// A commit killed before its ack may have landed: at most one more.
				if v != n || v < lastAck || v > lastAck+1 {
					t.Fatalf("round %d: helper started at counter %d revision %d; last acknowledged %d", round, v, n, lastAck)
				}
				lastAck = v
				continue
			}
			if n != lastAck+1 {
				t.Fatalf("round %d: acknowledged revision %d after %d", round, n, lastAck)
			}
			lastAck = n
			acks++
			if first {
				first = false
				time.AfterFunc(time.Duration(rand.IntN(40))*time.Millisecond, func() {
					killed.Store(true)
					_ = cmd.Process.Kill()
				})
			}
		}
		err = cmd.Wait()
		if !killed.Load() {
			t.Fatalf("round %d: helper ended by itself: %v", round, err)
		}
		t.Logf("round %d: killed after %d acknowledged commits (last %d)", round, acks, lastAck)
	}
	b := openBolt(t, path, store.BoltOptions{})
	kv, err := b.Get(bg, "counter")
	if err != nil {
		t.Fatal(err)
	}
	_, rev, err := b.List(bg, "")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := strconv.ParseInt(string(kv.Value), 10, 64)
	if v != rev || kv.ModRevision != rev || v < lastAck || v > lastAck+1 {
		t.Fatalf("after crashes: counter %d at mod revision %d, store revision %d, last acknowledged %d", v, kv.ModRevision, rev, lastAck)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("bbolt consistency check: %v", err)
	}
}

func benchStore(b *testing.B, opts store.BoltOptions) *store.Bolt {
	s := openBolt(b, filepath.Join(b.TempDir(), "kayo.db"), opts)
	var ops []store.Op
	for i := range 100 {
		ops = append(ops, store.Put(fmt.Sprintf("vms/%03d", i), make([]byte, 512)))
	}
	if _, err := s.Commit(bg, nil, ops); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkGet(b *testing.B) {
	s := benchStore(b, store.BoltOptions{})
	for b.Loop() {
		if _, err := s.Get(bg, "vms/042"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkList100(b *testing.B) {
	s := benchStore(b, store.BoltOptions{})
	for b.Loop() {
		if kvs, _, err := s.List(bg, "vms/"); err != nil || len(kvs) != 100 {
			b.Fatal(len(kvs), err)
		}
	}
}

func BenchmarkCommit(b *testing.B) {
	s := benchStore(b, store.BoltOptions{})
	v := make([]byte, 512)
	for b.Loop() {
		if _, err := s.Commit(bg, nil, []store.Op{store.Put("vms/042", v)}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCommitNoSync(b *testing.B) {
	s := benchStore(b, store.BoltOptions{NoSync: true})
	v := make([]byte, 512)
	for b.Loop() {
		if _, err := s.Commit(bg, nil, []store.Op{store.Put("vms/042", v)}); err != nil {
			b.Fatal(err)
		}
	}
}

// For comparison: the cost of the same read and commit with the file kept
// open, i.e. without the open/lock/close this store pays per operation.
func BenchmarkKeptOpenGet(b *testing.B) {
	s := benchStore(b, store.BoltOptions{})
	db, err := bolt.Open(s.Path(), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for b.Loop() {
		_ = db.View(func(tx *bolt.Tx) error {
			_ = append([]byte(nil), tx.Bucket([]byte("kv")).Get([]byte("vms/042"))...)
			return nil
		})
	}
}

func BenchmarkKeptOpenCommit(b *testing.B) {
	s := benchStore(b, store.BoltOptions{})
	db, err := bolt.Open(s.Path(), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	v := make([]byte, 16+512)
	for b.Loop() {
		if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("kv")).Put([]byte("vms/042"), v) }); err != nil {
			b.Fatal(err)
		}
	}
}

// A store that found the file held by another process lets go of it
// right after each operation: processes that share the file busily do
// not keep each other waiting for the idle time.
func TestBoltSharedFileNotKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kayo.db")
	b := openBolt(t, path, store.BoltOptions{NoSync: true})
	release := holdFile(t, path)
	time.AfterFunc(50*time.Millisecond, release)
	if _, err := b.Commit(bg, nil, []store.Op{store.Put("k", nil)}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := b.Get(bg, "k"); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Millisecond})
		if err != nil {
			t.Fatalf("operation %d: the store kept %s after its operation although another process had held it: %v", i, path, err)
		}
		_ = db.Close()
	}
}
