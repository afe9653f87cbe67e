package workexec

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// The node-work records as internal/engine/keys.go lays them out.
func reqKey(node, obj string) string { return "node-work/" + node + "/req/" + obj }
func resKey(node, obj string) string { return "node-work/" + node + "/res/" + obj }

func put(t *testing.T, e *engine.Engine, key string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store().Commit(context.Background(), nil, []store.Op{store.Put(key, b)}); err != nil {
		t.Fatal(err)
	}
}

// A request whose result is recorded is not run again by an executor
// that (re)starts; one without a result is run and its result recorded.
func TestDoneRequestNotRerun(t *testing.T) {
	e, err := engine.Open(engine.Config{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	const node, id = "N1", "local:test"
	put(t, e, reqKey(node, "vm/C/DONE"), engine.WorkRequest{ID: "done-before", Op: "vm.remove_files", Object: "vm/C/DONE", For: id, Created: time.Now()})
	put(t, e, resKey(node, "vm/C/DONE"), map[string]any{"id": "done-before", "done": true})
	// Not done: an operation this executor does not know, which it
	// answers with an error result.
	put(t, e, reqKey(node, "vm/C/NEW"), engine.WorkRequest{ID: "new", Op: "test.unknown", Object: "vm/C/NEW", For: id, Created: time.Now()})
	var mu sync.Mutex
	var ran []string
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x := StartLocal(ctx, e, Config{Node: node, Logf: t.Logf, Hook: func(op, phase string) {
		mu.Lock()
		defer mu.Unlock()
		ran = append(ran, op+" "+phase)
	}}, id)
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The served request's ID leaves finished with its request.
		x.mu.Lock()
		seen := x.finished["done-before"]
		x.mu.Unlock()
		_, err := e.Store().Get(context.Background(), resKey(node, "vm/C/NEW"))
		if seen && err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the executor never finished with both requests")
		}
		time.Sleep(time.Millisecond)
	}
	mu.Lock()
	got := strings.Join(ran, ", ")
	mu.Unlock()
	if got != "test.unknown before, test.unknown after" {
		t.Fatalf("ran %q, want only the request without a result", got)
	}
	kv, err := e.Store().Get(context.Background(), resKey(node, "vm/C/NEW"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		ID   string `json:"id"`
		Done bool   `json:"done"`
		Err  string `json:"err"`
	}
	if err := json.Unmarshal(kv.Value, &res); err != nil {
		t.Fatal(err)
	}
	if res.ID != "new" || !res.Done || !strings.Contains(res.Err, `operation "test.unknown" is unknown`) {
		t.Fatalf("result %+v, want the unknown operation's error", res)
	}
	if _, err := e.Store().Get(context.Background(), reqKey(node, "vm/C/NEW")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the served request is still there: %v", err)
	}
	cancel()
	<-x.Stopped()
}
