//go:build unix

package engine

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// The data dir is created 0700 and the database 0600 whatever the umask;
// an existing database readable by others is restricted to its owner.
func TestDatabasePermissions(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "kayo")
	e, err := openT(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	mustHosts(t, e, seedSpec("Y-21-2k8x64", 21))
	e.Close()
	db := filepath.Join(dir, DatabaseFile)
	for path, want := range map[string]os.FileMode{dir: 0o700, db: 0o600, filepath.Join(dir, DatabaseMarker): 0o600,
		store.CleanFile(db): 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, st.Mode().Perm(), err, want)
		}
	}
	if err := os.Chmod(db, 0o644); err != nil {
		t.Fatal(err)
	}
	e, err = openT(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.GetHost(context.Background(), "Y-21-2k8x64"); err != nil {
		t.Fatal(err)
	}
	e.Close()
	if st, _ := os.Stat(db); st.Mode().Perm() != 0o600 {
		t.Errorf("an existing database of mode 0644 was left %v", st.Mode().Perm())
	}
}
