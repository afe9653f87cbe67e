package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store/storetest"
)

// A backup taken while the store is in use restores to exactly what it
// held; the restore keeps the file it replaced.
func TestBoltBackupRestoreRoundTrip(t *testing.T) {
	path, _, _ := damagedFixture(t)
	b := openBolt(t, path, store.BoltOptions{NoSync: true})
	_, rev0, err := b.List(bg, "")
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	info, err := b.Backup(bg, backup)
	if err != nil {
		t.Fatal(err)
	}
	if info.Revision != rev0 || info.Keys != 599 || info.Path != backup {
		t.Fatalf("backup info %+v, want revision %d and 599 keys", info, rev0)
	}
	if st, err := os.Stat(backup); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", st, err)
	}
	want, _, _ := b.List(bg, "")
	// Changes after the backup are undone by the restore.
	if _, err := b.Commit(bg, nil, []store.Op{store.Put("/after", []byte("x")), store.Del("/big")}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.RestoreBolt(bg, backup, path, false, damageLockTimeout); err == nil ||
		!strings.Contains(err.Error(), "pass --force") || !strings.Contains(err.Error(), path) {
		t.Fatalf("restore over a healthy database without force: %v", err)
	}
	res, err := store.RestoreBolt(bg, backup, path, true, damageLockTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if res.Previous == "" {
		t.Fatal("the replaced database was not kept")
	}
	if kept, err := store.VerifyBackup(bg, res.Previous, damageLockTimeout); err != nil || kept.Revision != rev0+1 {
		t.Fatalf("kept database: %+v %v", kept, err)
	}
	got, rev, err := b.List(bg, "")
	if err != nil || rev != rev0 || len(got) != len(want) {
		t.Fatalf("after restore: %d keys at revision %d (%v), want %d at %d", len(got), rev, err, len(want), rev0)
	}
	for i := range want {
		if got[i].Key != want[i].Key || string(got[i].Value) != string(want[i].Value) || got[i].ModRevision != want[i].ModRevision {
			t.Fatalf("record %d after restore: %+v, want %+v", i, got[i].Key, want[i].Key)
		}
	}
	if _, err := b.Commit(bg, nil, []store.Op{store.Put("/after-restore", nil)}); err != nil {
		t.Fatalf("commit after restore: %v", err)
	}
	if _, err := b.Backup(bg, path); err == nil {
		t.Fatal("a backup over the database itself was accepted")
	}
}

// A damaged database is replaced without --force; a damaged or empty
// backup is refused and nothing is changed.
func TestBoltRestoreDamaged(t *testing.T) {
	path, ps, pages := damagedFixture(t)
	b := openBolt(t, path, store.BoltOptions{NoSync: true})
	backup := filepath.Join(t.TempDir(), "backup.db")
	if _, err := b.Backup(bg, backup); err != nil {
		t.Fatal(err)
	}
	_ = b.Close()

	bad := filepath.Join(t.TempDir(), "bad.db")
	data, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, data, 0o600); err != nil {
		t.Fatal(err)
	}
	storetest.Scribble(t, bad, ps, pages[storetest.PageLeaf][0], 5)
	empty := filepath.Join(t.TempDir(), "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), "truncated.db")
	if err := os.WriteFile(truncated, data[:8192], 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	for _, src := range []string{bad, empty, truncated} {
		_, err := store.RestoreBolt(bg, src, path, true, damageLockTimeout)
		if !errors.Is(err, store.ErrCorrupt) || !strings.Contains(err.Error(), src) || !strings.Contains(err.Error(), "cannot be restored") {
			t.Fatalf("restore of the damaged backup %s: %v", filepath.Base(src), err)
		}
		if now, _ := os.ReadFile(path); string(now) != string(before) {
			t.Fatalf("the database changed though the backup %s was refused", filepath.Base(src))
		}
	}

	storetest.Scribble(t, path, ps, pages[storetest.PageBranch][0], 9)
	if _, err := store.OpenBolt(path, store.BoltOptions{}); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("damaged database opened: %v", err)
	}
	res, err := store.RestoreBolt(bg, backup, path, false, damageLockTimeout)
	if err != nil {
		t.Fatalf("restore over a damaged database: %v", err)
	}
	if res.Previous == "" {
		t.Fatal("the damaged database was not kept")
	}
	b2 := openBolt(t, path, store.BoltOptions{})
	if kvs, _, err := b2.List(bg, "/vms/"); err != nil || len(kvs) != 598 {
		t.Fatalf("after restore: %d VMs, %v", len(kvs), err)
	}
}
