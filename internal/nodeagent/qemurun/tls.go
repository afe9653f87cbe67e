package qemurun

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
)

// Live migrations between a cluster's hosts run on a connection the two
// agents authenticate (internal/engine/hypervisor/qemu/migauth.go) and
// are encrypted by QEMU's TLS with a pre-shared key. Both keys derive
// from one key per cluster, made once by the first agent that needs it
// (crypto/rand, created with a compare-and-swap so every agent reads the
// same), held in the cluster database; each agent writes QEMU's to a
// 0600 file in its private directory.

// qemuPSKUser names the key in QEMU's key file.
const qemuPSKUser = "kayo"

// migrationKeys returns cluster's key (for the agents' authentication)
// and QEMU's TLS credentials, creating the key if it has none yet.
func (q *Runner) migrationKeys(ctx context.Context, cluster string) ([]byte, *qemu.TLS, error) {
	key, err := q.e.QEMUMigrationKey(ctx, cluster)
	if err != nil {
		return nil, nil, fmt.Errorf("the live-migration key of cluster %s: %w", cluster, err)
	}
	t, err := qemu.WritePSK(filepath.Join(q.dir, "tls", cluster), qemuPSKUser, qemu.DeriveKey(key, "qemu tls-psk"))
	if err != nil {
		return nil, nil, fmt.Errorf("writing the live-migration key of cluster %s: %w", cluster, err)
	}
	return key, &t, nil
}

// qemuMigrationID names one live migration in the agents' handshake.
func qemuMigrationID(cluster, vm string, tok hypervisor.Token) string {
	return fmt.Sprintf("%s/%s/%d", cluster, vm, tok)
}

// acceptMigration hands the first source that authenticates for r to
// m (launched with incoming "defer"), until the request's deadline or
// cancel or the agent's end; the listener is closed then.
func (q *Runner) acceptMigration(ln *qemu.MigrationListener, m *qemu.Machine, tls *qemu.TLS, r qemu.Request) context.CancelFunc {
	dl := r.Deadline
	if dl.IsZero() {
		dl = time.Now().Add(qemuRequestTimeout)
	}
	ctx, cancel := context.WithDeadline(q.life, dl)
	ln.Refused = func(addr string, err error) {
		q.cfg.Logf("qemu: %s: migration connection from %s refused: %v", r.VM.Name, addr, err)
	}
	go func() {
		defer cancel()
		conn, err := ln.Accept(ctx)
		if err != nil {
			q.cfg.Logf("qemu: %s: no live migration arrived: %v", r.VM.Name, err)
			return
		}
		defer func() { _ = conn.Close() }()
		if err := m.IncomingFrom(ctx, conn, tls); err != nil {
			q.cfg.Logf("qemu: %s: loading the live migration: %v", r.VM.Name, err)
		}
	}()
	return cancel
}
