package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
)

// BenchmarkClusterLifecycle registers 16 hosts, forms a cluster of them,
// destroys it and removes the hosts: what `make bench`'s CLI benchmark asks
// of the engine, without the CLI. The in-memory store is the floor.
func BenchmarkClusterLifecycle(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"mem", func(*testing.B) store.Store { return memstore.New() }},
		{"bolt-nosync", func(b *testing.B) store.Store {
			s, err := store.OpenBolt(filepath.Join(b.TempDir(), "cluster.db"), store.BoltOptions{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"bolt", func(b *testing.B) store.Store {
			s, err := store.OpenBolt(filepath.Join(b.TempDir(), "cluster.db"), store.BoltOptions{})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	ctx := context.Background()
	for _, sc := range stores {
		b.Run(sc.name, func(b *testing.B) {
			e, err := openT(Config{Store: sc.open(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			var names []string
			for i := 1; i <= 16; i++ {
				names = append(names, fmt.Sprintf("NODE%02d", i))
			}
			b.ResetTimer()
			for range b.N {
				for i, n := range names {
					if _, err := e.CreateHost(ctx, seedSpec(n, 100+i)); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", names...)); err != nil {
					b.Fatal(err)
				}
				if err := e.DeleteCluster(ctx, "HVCLUSTER"); err != nil {
					b.Fatal(err)
				}
				for _, n := range names {
					if err := e.DeleteHost(ctx, n); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
