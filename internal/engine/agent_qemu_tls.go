package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Live migrations between a cluster's hosts are encrypted and
// authenticated with QEMU's TLS and a pre-shared key: one per cluster,
// made once by the first agent that needs it (crypto/rand, created with a
// compare-and-swap so every agent reads the same), held in the cluster
// database and written by each agent to a 0600 file in its private
// directory for QEMU (internal/engine/hypervisor/qemu/migrate.go).

func qemuMigrationKeyKey(cluster string) string { return qemuPrefix + cluster + "/migration-key" }

// qemuPSKUser names the key in QEMU's key file.
const qemuPSKUser = "kayo"

// migrationTLS returns the TLS credentials of cluster's live migrations,
// creating the cluster's key if it has none yet.
func (q *QEMUAgent) migrationTLS(ctx context.Context, cluster string) (*qemu.TLS, error) {
	key, err := q.e.qemuMigrationKey(ctx, cluster)
	if err != nil {
		return nil, fmt.Errorf("the live-migration key of cluster %s: %w", cluster, err)
	}
	t, err := qemu.WritePSK(filepath.Join(q.dir, "tls", cluster), qemuPSKUser, key)
	if err != nil {
		return nil, fmt.Errorf("writing the live-migration key of cluster %s: %w", cluster, err)
	}
	return &t, nil
}

// qemuMigrationKey reads cluster's live-migration key, creating it once.
func (e *Engine) qemuMigrationKey(ctx context.Context, cluster string) ([]byte, error) {
	k := qemuMigrationKeyKey(cluster)
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
