package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// BackupInfo describes a verified copy of a database.
type BackupInfo struct {
	Path     string
	Size     int64
	Revision int64 // the store revision it holds
	Keys     int
}

// Backup writes a consistent snapshot of the database to path: one read
// transaction copied (bbolt's Tx.WriteTo) into a new file next to path,
// synced, checked in full (VerifyBackup) and renamed over path, so path
// is never left half written. Commits wait meanwhile; reads go on.
func (b *Bolt) Backup(ctx context.Context, path string) (BackupInfo, error) {
	if same(path, b.path) {
		return BackupInfo{}, fmt.Errorf("store: backup: %s is the database itself; name another file: %w", path, ErrInvalid)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("store: backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // after the rename there is nothing left to remove
	err = b.do(ctx, false, func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(tmp)
		return err
	})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return BackupInfo{}, fmt.Errorf("store: backup of %s to %s: %w", b.path, path, err)
	}
	info, err := VerifyBackup(ctx, tmp.Name(), b.opts.LockTimeout)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("store: the backup written to %s failed its check, nothing was kept: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return BackupInfo{}, fmt.Errorf("store: backup: %w", err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return BackupInfo{}, fmt.Errorf("store: backup: %w", err)
	}
	info.Path = path
	return info, nil
}

// VerifyBackup checks that path holds an intact cluster database (meta
// pages, every page, bbolt's consistency check, the store's layout)
// without writing to it. A damaged file is an error wrapping ErrCorrupt.
func VerifyBackup(ctx context.Context, path string, lockTimeout time.Duration) (BackupInfo, error) {
	st, err := os.Stat(path)
	if err != nil {
		return BackupInfo{}, err
	}
	if !st.Mode().IsRegular() {
		return BackupInfo{}, fmt.Errorf("%s is not a regular file: %w", path, ErrInvalid)
	}
	if st.Size() == 0 {
		return BackupInfo{}, &CorruptError{Path: path, Detail: "the file is empty", Backup: true}
	}
	if lockTimeout <= 0 {
		lockTimeout = DefaultLockTimeout
	}
	b := newBolt(path, BoltOptions{LockTimeout: lockTimeout})
	b.exists = true
	sum, err := b.verify(ctx, true)
	var ce *CorruptError
	if errors.As(err, &ce) {
		ce.Backup = true
	}
	if err != nil {
		return BackupInfo{}, err
	}
	if !sum.ready {
		return BackupInfo{}, &CorruptError{Path: path, Detail: "it is a bbolt file but holds no kayo cluster database", Backup: true}
	}
	return BackupInfo{Path: path, Size: st.Size(), Revision: sum.rev, Keys: sum.keys}, nil
}

// RestoreResult says what Restore did.
type RestoreResult struct {
	BackupInfo
	// Previous is where the file that was replaced is kept ("" when
	// there was none or it was empty).
	Previous string
}

// RestoreBolt puts the backup in place of the database at target. It
// verifies the backup, copies it next to target (synced) and verifies the
// copy, then, holding target's lock so that no operation is under way,
// renames it over target; the replaced file is kept as
// target.replaced-TIME. A target that holds a healthy database is
// replaced only with force; a damaged, empty or missing one always.
func RestoreBolt(ctx context.Context, backup, target string, force bool, lockTimeout time.Duration) (RestoreResult, error) {
	if lockTimeout <= 0 {
		lockTimeout = DefaultLockTimeout
	}
	if same(backup, target) {
		return RestoreResult{}, fmt.Errorf("store: restore: %s is the database itself: %w", backup, ErrInvalid)
	}
	info, err := VerifyBackup(ctx, backup, lockTimeout)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("store: restore: %w", err)
	}
	st, err := os.Stat(target)
	exists := err == nil && st.Size() > 0
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return RestoreResult{}, fmt.Errorf("store: restore: %w", err)
	}
	if exists && !force {
		live, lerr := VerifyBackup(ctx, target, lockTimeout)
		if lerr == nil {
			return RestoreResult{}, fmt.Errorf("store: restore: %s holds an intact cluster database (revision %d, %d keys; the backup is at revision %d): "+
				"restoring would replace it; pass --force to do so (it is kept next to it)", target, live.Revision, live.Keys, info.Revision)
		}
		if !errors.Is(lerr, ErrCorrupt) {
			return RestoreResult{}, fmt.Errorf("store: restore: cannot tell whether %s is in use: %w", target, lerr)
		}
	}
	tmp, err := copyFile(backup, target)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("store: restore: %w", err)
	}
	defer os.Remove(tmp)
	if _, err := VerifyBackup(ctx, tmp, lockTimeout); err != nil {
		return RestoreResult{}, fmt.Errorf("store: restore: the copy of the backup failed its check, nothing was replaced: %w", err)
	}
	res := RestoreResult{BackupInfo: info}
	release, err := lockFile(ctx, target, lockTimeout)
	if err != nil {
		return RestoreResult{}, fmt.Errorf("store: restore: %w", err)
	}
	defer release()
	if exists {
		stamp := fmt.Sprintf("%s.replaced-%s", target, time.Now().UTC().Format("20060102T150405Z"))
		res.Previous = stamp
		for n := 2; ; n++ {
			err := os.Link(target, res.Previous)
			if err == nil {
				break
			}
			if !errors.Is(err, fs.ErrExist) || n > 100 {
				return RestoreResult{}, fmt.Errorf("store: restore: keep the current database: %w", err)
			}
			res.Previous = fmt.Sprintf("%s-%d", stamp, n)
		}
	}
	_ = os.Remove(CleanFile(target))
	if err := os.Rename(tmp, target); err != nil {
		return RestoreResult{}, fmt.Errorf("store: restore: %w", err)
	}
	if err := SyncDir(filepath.Dir(target)); err != nil {
		return RestoreResult{}, fmt.Errorf("store: restore: %w", err)
	}
	res.Path = target
	return res, nil
}

// copyFile copies src to a new 0600 file next to dst, synced, and returns
// its name.
func copyFile(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".restore-*")
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(out.Name())
		return "", fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Name(), nil
}

// lockFile takes path's lock exclusively (as a commit does), waiting up to
// timeout; a missing path needs none.
func lockFile(ctx context.Context, path string, timeout time.Duration) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		ok, err := tryLock(f)
		if err != nil {
			_ = f.Close()
			return nil, err
		}
		if ok {
			return func() { unlock(f); _ = f.Close() }, nil
		}
		if time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("%w: %s is held by another process; gave up after %s (lock timeout)", ErrLockTimeout, path, timeout)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, ctx.Err()
		case <-time.After(pollMax):
		}
	}
}

// same reports whether a and b name the same file.
func same(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	if errA == nil && errB == nil {
		return os.SameFile(sa, sb)
	}
	aa, _ := filepath.Abs(a)
	ab, _ := filepath.Abs(b)
	return aa == ab
}

// SyncDir makes a new or renamed entry of dir durable (the engine's
// database marker uses it too).
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
