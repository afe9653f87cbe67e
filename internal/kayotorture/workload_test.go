package kayotorture

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// TestWorkloadVerifies: two nodes of one process run the workload on one
// image; Verify finds every acknowledged operation, and finds it missing
// once an acknowledged file is removed behind the logs' back.
func TestWorkloadVerifies(t *testing.T) {
	img := filepath.Join(t.TempDir(), "lun.img")
	d, err := kayofs.CreateImage(img, 256<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := kayofs.Format(d, kayofs.FormatOptions{Slots: 4}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	outs := make([]bytes.Buffer, 2)
	for i, node := range []string{"A", "B"} {
		v, err := kayofs.Mount(d, node)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if _, err := Run(context.Background(), v, Options{Node: node, Duration: time.Second, MinOps: 20, Out: &outs[i], Seed: uint64(i)}); err != nil {
				t.Error(err)
			}
			if err := v.Unmount(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var logs []*NodeLog
	for i := range outs {
		l, err := ParseLog(strings.NewReader(outs[i].String()))
		if err != nil {
			t.Fatal(err)
		}
		if l.Acked() < 10 {
			t.Fatalf("%s acknowledged %d operations", l.Node, l.Acked())
		}
		logs = append(logs, l)
	}
	v, err := kayofs.Mount(d, "verifier")
	if err != nil {
		t.Fatal(err)
	}
	defer v.Unmount()
	sum, err := Verify(v, logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(sum)
	ents, err := v.ReadDir("A")
	if err != nil || len(ents) == 0 {
		t.Fatalf("A's files: %v %v", ents, err)
	}
	if err := v.Remove("A/" + ents[0].Name); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(v, logs); !errors.Is(err, ErrLost) {
		t.Fatalf("Verify after removing an acknowledged file: %v, want ErrLost", err)
	}
}
