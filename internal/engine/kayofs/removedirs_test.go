package kayofs

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestRemoveDirsOneTransaction: six VM directories in one call, one of
// them holding a file it may not remove, one missing: the four others go
// in one transaction (two syncs), the refused one keeps every file, each
// directory's error is its own, and Check finds nothing.
func TestRemoveDirsOneTransaction(t *testing.T) {
	fd := newImage(t, 1<<30)
	dev := &countDevice{FileDevice: fd}
	mustFormat(t, dev, FormatOptions{Slots: 2})
	a, b := mustMount(t, dev, "A"), mustMount(t, dev, "B")
	for i := range 5 {
		if _, err := a.CreateFiles(fmt.Sprintf("VM%d", i), vmFiles()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Create("VM2/late.txt"); err != nil { // a fast change A's view has not seen
		t.Fatal(err)
	}
	ours := []string{"VM.vhd", "VM.xml"}
	rs := []DirRemoval{{Dir: "VM0", Only: ours}, {Dir: "VM1", Only: ours}, {Dir: "VM2", Only: ours},
		{Dir: "VM9", Only: ours}, {Dir: "VM3"}, {Dir: "VM4", Only: ours}}
	s0 := dev.syncs.Load()
	errs := b.RemoveDirs(rs)
	if n := dev.syncs.Load() - s0; n != 2 {
		t.Errorf("RemoveDirs of 4 directories made %d syncs, want 2 (one transaction)", n)
	}
	for i, r := range rs {
		var want error
		switch r.Dir {
		case "VM2":
			want = ErrNotEmpty
		case "VM9":
			want = ErrNotExist
		}
		if (want == nil) != (errs[i] == nil) || (want != nil && !errors.Is(errs[i], want)) {
			t.Errorf("%s: %v, want %v", r.Dir, errs[i], want)
		}
		_, err := a.Stat(r.Dir)
		if kept := r.Dir == "VM2"; kept != (err == nil) {
			t.Errorf("%s after RemoveDirs: Stat %v", r.Dir, err)
		}
	}
	for _, f := range []string{"VM2/VM.vhd", "VM2/VM.xml", "VM2/late.txt"} {
		if _, err := a.Stat(f); err != nil {
			t.Errorf("%s of the refused directory: %v", f, err)
		}
	}
	unmountAndCheck(t, dev, a, b)
}

// TestRemoveDirGroupCommit: while one removal runs, the removals other
// mounts of the process (sharing a view, OFD locks) are asked for wait
// and then go in one transaction together, each with its own outcome.
func TestRemoveDirGroupCommit(t *testing.T) {
	fd := newImage(t, 1<<30)
	dev := &countDevice{FileDevice: fd}
	mustFormat(t, dev, FormatOptions{Slots: 8})
	views := NewViews()
	var vs []*Volume
	for i := range 6 {
		vs = append(vs, mustMountViews(t, dev, fmt.Sprintf("node%d", i), views))
	}
	for i := range vs {
		if _, err := vs[i].CreateFiles(fmt.Sprintf("VM%d", i), vmFiles()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := vs[0].Create("VM3/late.txt"); err != nil {
		t.Fatal(err)
	}
	g := &vs[0].nsv.removals
	g.lead.Lock() // a batch running: the removals below queue up behind it
	errs := make([]error, len(vs))
	var wg sync.WaitGroup
	for i, v := range vs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = v.RemoveDirOnly(fmt.Sprintf("VM%d", i), []string{"VM.vhd", "VM.xml"})
		}()
	}
	for {
		g.mu.Lock()
		n := len(g.pending)
		g.mu.Unlock()
		if n == len(vs) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	s0 := dev.syncs.Load()
	g.lead.Unlock()
	wg.Wait()
	if n := dev.syncs.Load() - s0; n != 2 {
		t.Errorf("%d queued removals made %d syncs, want 2 (one transaction)", len(vs), n)
	}
	for i, err := range errs {
		if i == 3 {
			if !errors.Is(err, ErrNotEmpty) {
				t.Errorf("VM3 holding late.txt: %v, want ErrNotEmpty", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("VM%d: %v", i, err)
		}
		if _, err := vs[5-i].Stat(fmt.Sprintf("VM%d", i)); !errors.Is(err, ErrNotExist) {
			t.Errorf("VM%d after its removal: %v", i, err)
		}
	}
	if _, err := vs[1].Stat("VM3/late.txt"); err != nil {
		t.Error(err)
	}
	unmountAndCheck(t, dev, vs...)
}
