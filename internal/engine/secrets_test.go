package engine

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/memstore"
)

// TestQEMUMigrationKeyOnce: agents asking for a cluster's live-migration
// key at once all get the same one (made once, compare-and-swap), 32
// random bytes; another cluster gets its own.
func TestQEMUMigrationKeyOnce(t *testing.T) {
	e, err := openT(Config{Store: memstore.New(), DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := e.QEMUMigrationKey(ctx, "HVCLUSTER")
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	for _, k := range keys {
		if len(k) != 32 || !bytes.Equal(k, keys[0]) {
			t.Fatalf("keys differ: %x", keys)
		}
	}
	other, err := e.QEMUMigrationKey(ctx, "OTHER")
	if err != nil || bytes.Equal(other, keys[0]) || bytes.Equal(keys[0], make([]byte, 32)) {
		t.Fatalf("another cluster's key %x (%v), first %x", other, err, keys[0])
	}
}
