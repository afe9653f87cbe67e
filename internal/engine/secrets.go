package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// QEMUMigrationKey is cluster's live-migration key, made once: the QEMU
// runners of its nodes derive each migration's TLS key from it
// (internal/nodeagent/qemurun/tls.go).
func (e *Engine) QEMUMigrationKey(ctx context.Context, cluster string) ([]byte, error) {
	return e.secretOnce(ctx, qemu.MigrationKeyKey(cluster))
}

// secretOnce reads the 32-byte random key at k, creating it once (the
// first writer wins; the others read theirs).
func (e *Engine) secretOnce(ctx context.Context, k string) ([]byte, error) {
	for {
		var hexKey string
		_, err := getJSON(ctx, e.st, k, &hexKey)
		if err == nil {
			key, derr := hex.DecodeString(hexKey)
			if derr != nil || len(key) < 32 {
				return nil, fmt.Errorf("%s holds no valid key (%d hex digits)", k, len(hexKey))
			}
			return key, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		_, err = e.st.Commit(ctx, []store.Cmp{store.Absent(k)}, []store.Op{putJSON(k, hex.EncodeToString(key))})
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, store.ErrConflict) {
			return nil, err
		}
		// Another agent made it first: read theirs.
	}
}
