package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/storetest"
)

const damageLockTimeout = 2 * time.Second

// damagedFixture writes a database with every page class: enough keys for
// branch pages, a value larger than a page (overflow), and deletes (free
// pages, a non-empty freelist). It returns the file and its pages.
func damagedFixture(t *testing.T) (path string, pageSize int, pages map[string][]int) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "cluster.db")
	b, err := store.OpenBolt(path, store.BoltOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	val := bytes.Repeat([]byte("v"), 300)
	for i := 0; i < 600; i += 50 {
		var ops []store.Op
		for j := i; j < i+50; j++ {
			ops = append(ops, store.Put(fmt.Sprintf("/vms/VM%04d", j), val))
		}
		if _, err := b.Commit(bg, nil, ops); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Commit(bg, nil, []store.Op{store.Put("/big", bytes.Repeat([]byte("B"), 20000))}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Commit(bg, nil, []store.Op{store.Del("/vms/VM0001"), store.Del("/vms/VM0002")}); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	pageSize, pages = storetest.Pages(t, path)
	for _, c := range []string{storetest.PageFreelist, storetest.PageBranch, storetest.PageLeaf, storetest.PageOverflow} {
		if len(pages[c]) == 0 {
			t.Fatalf("fixture has no %s page: %v", c, pages)
		}
	}
	return path, pageSize, pages
}

// within runs fn and fails the test unless it returns within the lock
// timeout (plus scheduling slack): a damaged file must never hang.
func within(t *testing.T, what string, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(damageLockTimeout + 3*time.Second):
		t.Fatalf("%s did not return within the lock timeout", what)
		return nil
	}
}

// wantCorrupt checks that err is a clean damage report naming the file.
func wantCorrupt(t *testing.T, what string, err error, path string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error on a damaged database", what)
	}
	if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "kayoctl restore") {
		t.Fatalf("%s: error %q, want one wrapping ErrCorrupt naming %s and `kayoctl restore`", what, err, path)
	}
	if strings.Count(err.Error(), path) > 2 {
		t.Errorf("%s: error repeats the path: %q", what, err)
	}
}

type damage struct {
	name  string
	apply func(t *testing.T, path string, pageSize int, pages map[string][]int)
}

func damages() []damage {
	truncate := func(size func(st os.FileInfo) int64) func(*testing.T, string, int, map[string][]int) {
		return func(t *testing.T, path string, _ int, _ map[string][]int) {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, size(st)); err != nil {
				t.Fatal(err)
			}
		}
	}
	scribble := func(class string) func(*testing.T, string, int, map[string][]int) {
		return func(t *testing.T, path string, ps int, pages map[string][]int) {
			ids := pages[class]
			storetest.Scribble(t, path, ps, ids[len(ids)/2], 19)
		}
	}
	ds := []damage{}
	for _, n := range []int64{4 << 10, 8 << 10, 16 << 10, 32 << 10} {
		ds = append(ds, damage{fmt.Sprintf("truncated to %d KiB", n>>10), truncate(func(os.FileInfo) int64 { return n })})
	}
	ds = append(ds, damage{"truncated to half", truncate(func(st os.FileInfo) int64 { return st.Size() / 2 })})
	for _, c := range []string{storetest.PageMeta0, storetest.PageMeta1, storetest.PageFreelist, storetest.PageBranch,
		storetest.PageLeaf, storetest.PageOverflow} {
		ds = append(ds, damage{"random bytes over a " + c + " page", scribble(c)})
	}
	ds = append(ds, damage{"random bytes over pages 4-7", func(t *testing.T, path string, ps int, _ map[string][]int) {
		for id := 4; id <= 7; id++ {
			storetest.Scribble(t, path, ps, id, 7)
		}
	}})
	return ds
}

// Every kind of damage is a clean error naming the file, never a panic,
// a fault or a hang: opening the damaged file, and operations of a store
// opened before the damage.
func TestBoltDamagedFile(t *testing.T) {
	ds := append(damages(), damage{"truncated to 0 bytes", func(t *testing.T, path string, _ int, _ map[string][]int) {
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
	}})
	for _, d := range ds {
		t.Run(d.name, func(t *testing.T) {
			path, ps, pages := damagedFixture(t)
			opts := store.BoltOptions{NoSync: true, LockTimeout: damageLockTimeout, Existing: true}
			before, err := store.OpenBolt(path, opts)
			if err != nil {
				t.Fatal(err)
			}
			d.apply(t, path, ps, pages)

			err = within(t, "OpenBolt", func() error {
				b, err := store.OpenBolt(path, opts)
				if err == nil {
					_ = b.Close()
				}
				return err
			})
			wantCorrupt(t, "OpenBolt", err, path)

			// The store opened before: reading everything or writing
			// fails cleanly (a read that avoids the damaged page may
			// succeed; together they touch every page class).
			listErr := within(t, "List", func() error { _, _, err := before.List(bg, ""); return err })
			_, commitErr := before.Commit(bg, nil, []store.Op{store.Put("/vms/new", []byte("x"))})
			switch {
			case listErr != nil:
				wantCorrupt(t, "List", listErr, path)
			case commitErr != nil:
				wantCorrupt(t, "Commit", commitErr, path)
			default:
				if d.name != "truncated to 0 bytes" {
					t.Fatal("both a full List and a Commit succeeded on the damaged file")
				}
			}
			// A truncated file is caught by the meta check, before bbolt
			// reads a page beyond its end (which would leak its map).
			if strings.HasPrefix(d.name, "truncated to") && d.name != "truncated to 0 bytes" &&
				(commitErr == nil || strings.Contains(commitErr.Error(), "bbolt failed reading a page")) {
				t.Errorf("Commit on a truncated file: %v, want the meta check's report", commitErr)
			}
			if err := within(t, "Close", before.Close); err != nil {
				t.Fatalf("Close: %v", err)
			}
		})
	}
}

// A reopen after the damage keeps failing the same way (no state of the
// process is left broken, no lock left held): a repaired file opens again.
func TestBoltDamageThenRepair(t *testing.T) {
	path, ps, pages := damagedFixture(t)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Scribble(t, path, ps, pages[storetest.PageLeaf][0], 3)
	opts := store.BoltOptions{NoSync: true, LockTimeout: damageLockTimeout}
	for range 2 {
		if _, err := store.OpenBolt(path, opts); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("OpenBolt on a damaged file: %v", err)
		}
	}
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, damageLockTimeout)
	defer cancel()
	b, err := store.OpenBolt(path, opts)
	if err != nil {
		t.Fatalf("OpenBolt after the repair: %v", err)
	}
	defer b.Close()
	if _, err := b.Commit(ctx, nil, []store.Op{store.Put("/after", nil)}); err != nil {
		t.Fatalf("commit after the repair (is a lock still held?): %v", err)
	}
}

// The 0-byte file of a database that existed is refused, not made anew.
func TestBoltExistingEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := store.OpenBolt(path, store.BoltOptions{Existing: true})
	wantCorrupt(t, "OpenBolt", err, path)
	if st, _ := os.Stat(path); st.Size() != 0 {
		t.Fatalf("the empty file was written: %d bytes", st.Size())
	}
	b, err := store.OpenBolt(path, store.BoltOptions{})
	if err != nil {
		t.Fatalf("a new database in an empty file: %v", err)
	}
	_ = b.Close()
}
