package kayofs

import (
	"bytes"
	"fmt"
	"math/rand"
	"sync"
	"testing"
)

// pattern is deterministic content for (tag, off, n).
func pattern(tag string, seed int64, n int) []byte {
	r := rand.New(rand.NewSource(seed ^ int64(len(tag))*7919))
	p := make([]byte, n)
	r.Read(p)
	copy(p, tag)
	return p
}

// Several nodes (mounts) × goroutines write their own files and disjoint
// regions of one shared file at the same time; nothing may be lost and no
// block may be handed out twice.
func TestConcurrentNodesGoroutines(t *testing.T) {
	dev := newImage(t, 2<<30)
	mustFormat(t, dev, FormatOptions{Slots: 4})
	setup := mustMount(t, dev, "setup")
	if _, err := setup.Create("shared.vhd"); err != nil {
		t.Fatal(err)
	}
	setup.Unmount()
	const nodes, perNode, region = 4, 3, 1 << 20
	vols := make([]*Volume, nodes)
	for i := range vols {
		vols[i] = mustMount(t, dev, fmt.Sprintf("node%d", i))
	}
	type write struct {
		file string
		off  int64
		data []byte
	}
	var mu sync.Mutex
	var log []write
	var wg sync.WaitGroup
	for n := 0; n < nodes; n++ {
		for g := 0; g < perNode; g++ {
			wg.Add(1)
			go func(n, g int) {
				defer wg.Done()
				v := vols[n]
				id := n*perNode + g
				own := fmt.Sprintf("n%d/g%d.vhd", n, g)
				if err := v.MkdirAll(fmt.Sprintf("n%d", n)); err != nil {
					t.Error(err)
					return
				}
				f, err := v.Create(own)
				if err != nil {
					t.Error(err)
					return
				}
				sh, err := v.Open("shared.vhd")
				if err != nil {
					t.Error(err)
					return
				}
				if g == 0 {
					if err := f.Allocate(2 << 20); err != nil {
						t.Error(err)
						return
					}
				}
				r := rand.New(rand.NewSource(int64(id)))
				for i := 0; i < 25; i++ {
					p := pattern(own, int64(i), r.Intn(40000)+1)
					off := r.Int63n(4 << 20)
					if _, err := f.WriteAt(p, off); err != nil {
						t.Error(err)
						return
					}
					q := pattern("shared", int64(id*1000+i), r.Intn(20000)+1)
					qoff := int64(id)*region + r.Int63n(region-int64(len(q)))
					if _, err := sh.WriteAt(q, qoff); err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					log = append(log, write{own, off, p}, write{"shared.vhd", qoff, q})
					mu.Unlock()
				}
			}(n, g)
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// per-file models: writes to one file region come from one goroutine,
	// so their log order is their program order
	models := map[string][]byte{}
	for _, w := range log {
		m := models[w.file]
		if need := w.off + int64(len(w.data)); int64(len(m)) < need {
			m = append(m, make([]byte, need-int64(len(m)))...)
		}
		copy(m[w.off:], w.data)
		models[w.file] = m
	}
	reader := vols[0]
	for name, m := range models {
		f, err := reader.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sz, _ := f.Size()
		if sz < int64(len(m)) {
			t.Fatalf("%s: size %d < %d", name, sz, len(m))
		}
		got := make([]byte, len(m))
		f.ReadAt(got, 0)
		if !bytes.Equal(got, m) {
			t.Fatalf("%s: content lost", name)
		}
	}
	for _, v := range vols {
		if err := v.Unmount(); err != nil {
			t.Fatal(err)
		}
	}
	mustCheck(t, dev)
}
