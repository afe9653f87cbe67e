package store

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Snapshot writes a snapshot of the whole etcd keyspace to path, as
// `etcdctl snapshot save` does (it includes keys outside the prefix):
// into a new file next to path, synced, its meta pages checked, then
// renamed over path. Restoring it is etcd's job (`etcdutl snapshot
// restore`), not the store's.
func (s *Etcd) Snapshot(ctx context.Context, path string) (BackupInfo, error) {
	fail := func(err error) (BackupInfo, error) {
		return BackupInfo{}, fmt.Errorf("store: etcd at %s: snapshot to %s: %w", s.eps, path, err)
	}
	if s.closed.Load() {
		return fail(ErrClosed)
	}
	resp, err := s.cli.Get(ctx, s.marker, clientv3.WithCountOnly())
	if err != nil {
		return fail(err)
	}
	rc, err := s.cli.Snapshot(ctx)
	if err != nil {
		return fail(err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, rc)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail(err)
	}
	if _, err := checkFile(tmp.Name()); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fail(err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fail(err)
	}
	return BackupInfo{Path: path, Size: n, Revision: resp.Header.Revision}, nil
}
