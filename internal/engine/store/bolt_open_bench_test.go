package store_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// openBenchSizes are databases of n records of 1 KiB: about a cluster's
// worth of VMs and events, and a large one (about 64 MiB).
var openBenchSizes = []int{5_000, 60_000}

func bigDatabase(b *testing.B, n int) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "cluster.db")
	s, err := store.OpenBolt(path, store.BoltOptions{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	v := bytes.Repeat([]byte("x"), 1024)
	for i := 0; i < n; i += 1000 {
		var ops []store.Op
		for j := i; j < min(i+1000, n); j++ {
			ops = append(ops, store.Put(fmt.Sprintf("/events/%08d", j), v))
		}
		if _, err := s.Commit(bg, nil, ops); err != nil {
			b.Fatal(err)
		}
	}
	return path
}

// BenchmarkOpenBolt is OpenBolt on an existing database left cleanly by
// its last commit: the meta pages are checked, the full check is skipped.
func BenchmarkOpenBolt(b *testing.B) { benchOpen(b, false) }

// BenchmarkOpenBoltFullCheck is OpenBolt on a database not left cleanly
// (no sidecar): a read of every page and bbolt's consistency check.
func BenchmarkOpenBoltFullCheck(b *testing.B) { benchOpen(b, true) }

func benchOpen(b *testing.B, full bool) {
	for _, n := range openBenchSizes {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			path := bigDatabase(b, n)
			for b.Loop() {
				if full {
					if err := os.Remove(store.CleanFile(path)); err != nil {
						b.Fatal(err)
					}
				}
				s, err := store.OpenBolt(path, store.BoltOptions{})
				if err != nil {
					b.Fatal(err)
				}
				_ = s.Close()
			}
		})
	}
}

// BenchmarkOpenBoltUnchecked is what OpenBolt did before it checked the
// file: one read-only open that reads the layout version.
func BenchmarkOpenBoltUnchecked(b *testing.B) {
	for _, n := range openBenchSizes {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			path := bigDatabase(b, n)
			for b.Loop() {
				db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
				if err != nil {
					b.Fatal(err)
				}
				err = db.View(func(tx *bolt.Tx) error {
					if tx.Bucket([]byte("meta")).Get([]byte("version")) == nil {
						return fmt.Errorf("no layout")
					}
					return nil
				})
				_ = db.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
