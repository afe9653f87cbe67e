package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// BenchmarkBoltMixed is the embedded store's share of the VM benchmark's
// create (bench/vm_test.go), Terraform's parallelism of 10: each of 10
// goroutines reads three keys for every fsync'd commit, as a VM's
// creation does (13 reads, 4 commits). An op is one goroutine's round.
func BenchmarkBoltMixed(b *testing.B) {
	ctx := context.Background()
	s, err := OpenBolt(filepath.Join(b.TempDir(), "cluster.db"), BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := range 64 {
		if _, err := s.Commit(ctx, nil, []Op{Put(fmt.Sprintf("k%02d", i), make([]byte, 512))}); err != nil {
			b.Fatal(err)
		}
	}
	var mu sync.Mutex
	n := 0
	b.ResetTimer()
	var wg sync.WaitGroup
	for g := range 10 {
		wg.Go(func() {
			for i := 0; ; i++ {
				mu.Lock()
				stop := n >= b.N
				n++
				mu.Unlock()
				if stop {
					return
				}
				for r := range 3 {
					if _, err := s.Get(ctx, fmt.Sprintf("k%02d", (g*7+i+r)%64)); err != nil {
						b.Error(err)
						return
					}
				}
				if _, err := s.Commit(ctx, nil, []Op{Put(fmt.Sprintf("k%02d", (g*5+i)%64), make([]byte, 512))}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
