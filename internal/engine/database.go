package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// DatabaseMarker is written next to the embedded database once it exists.
// It outlives a database file that is deleted or emptied, so that is not
// taken for a new installation (openBolt).
const DatabaseMarker = DatabaseFile + ".created"

// existedEvidence lists what in dir shows that a cluster database existed:
// the marker and the embedded SAN's LUN images.
func existedEvidence(dir string) []string {
	var ev []string
	if _, err := os.Stat(filepath.Join(dir, DatabaseMarker)); err == nil {
		ev = append(ev, fmt.Sprintf("the marker %s written when the database was created", filepath.Join(dir, DatabaseMarker)))
	}
	if imgs, _ := filepath.Glob(filepath.Join(dir, SANDir, "*.img")); len(imgs) > 0 {
		names := make([]string, 0, len(imgs))
		for _, img := range imgs {
			names = append(names, filepath.Base(img))
		}
		ev = append(ev, fmt.Sprintf("the LUN images of the embedded SAN in %s (%s)", filepath.Join(dir, SANDir), strings.Join(names, ", ")))
	}
	return ev
}

// openBolt opens the embedded database in dir. A missing or empty file is
// a new database only when nothing in dir shows that one existed.
func openBolt(dir string, cfg Config) (*store.Bolt, error) {
	path := filepath.Join(dir, DatabaseFile)
	ev := existedEvidence(dir)
	st, err := os.Stat(path)
	switch {
	case err == nil && st.Size() > 0:
	case (err == nil || errors.Is(err, fs.ErrNotExist)) && len(ev) > 0:
		imgs, _ := filepath.Glob(filepath.Join(dir, SANDir, "*.img"))
		return nil, &DatabaseLostError{Dir: dir, Path: path, Empty: err == nil, Evidence: ev, LUNs: len(imgs) > 0}
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	// The database will hold the cluster's secrets: owner only.
	if err == nil && st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("restrict %s to its owner: %w", path, err)
		}
	}
	b, err := store.OpenBolt(path, store.BoltOptions{LockTimeout: cfg.LockTimeout, OnWait: cfg.OnWait, Existing: len(ev) > 0})
	if err != nil {
		return nil, err
	}
	if err := writeMarker(dir); err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

// writeMarker writes DatabaseMarker unless it exists, durably.
func writeMarker(dir string) error {
	path := filepath.Join(dir, DatabaseMarker)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write the database marker: %w", err)
	}
	_, werr := fmt.Fprintf(f, "A kayo cluster database (%s) was created in this directory at %s.\n"+
		"If it is missing or empty, kayo refuses to start a new one: restore a backup with `kayoctl restore FILE`.\n",
		DatabaseFile, time.Now().UTC().Format(time.RFC3339))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("write the database marker %s: %w", path, err)
	}
	return store.SyncDir(dir)
}

// Backup writes a consistent copy of the cluster database to path: a
// bbolt snapshot of the embedded database (store.Bolt.Backup), or an etcd
// snapshot (store.Etcd.Snapshot), which etcd's tools restore.
func (e *Engine) Backup(ctx context.Context, path string) (store.BackupInfo, error) {
	switch st := e.st.(type) {
	case *store.Bolt:
		return st.Backup(ctx, path)
	case *store.Etcd:
		return st.Snapshot(ctx, path)
	}
	return store.BackupInfo{}, fmt.Errorf("the cluster database %T cannot be backed up: %w", e.st, ErrInvalid)
}

// RestoreDatabase puts the backup in place of the embedded database of
// dataDir (store.RestoreBolt: verified first; a healthy database is
// replaced only with force and kept next to it).
func RestoreDatabase(ctx context.Context, dataDir, backup string, force bool, lockTimeout time.Duration) (store.RestoreResult, error) {
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return store.RestoreResult{}, fmt.Errorf("data_dir %q: %w", dataDir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return store.RestoreResult{}, fmt.Errorf("data_dir %q: cannot create it: %w", dir, err)
	}
	res, err := store.RestoreBolt(ctx, backup, filepath.Join(dir, DatabaseFile), force, lockTimeout)
	if err != nil {
		return res, err
	}
	return res, writeMarker(dir)
}
