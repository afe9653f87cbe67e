package engine

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A data dir whose database existed: one host, a LUN image.
func existedDataDir(t *testing.T, lun bool) string {
	t.Helper()
	dir := t.TempDir()
	e, err := openT(Config{DataDir: dir, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mustHosts(t, e, seedSpec("Y-21-2k8x64", 21))
	e.Close()
	if lun {
		if err := os.MkdirAll(filepath.Join(dir, SANDir), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, SANDir, "lun0.img"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// An emptied or deleted cluster.db is no new database when the marker or a
// LUN image shows one existed; nothing is written; without evidence a new
// database is made.
func TestOpenRefusesLostDatabase(t *testing.T) {
	for _, tc := range []struct {
		name            string
		lun, keepMarker bool
		remove          bool
		want            string
	}{
		{"empty, marker", false, true, false, "is empty (0 bytes)"},
		{"empty, LUN image only", true, false, false, "lun0.img"},
		{"missing, marker and LUN", true, true, true, "is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := existedDataDir(t, tc.lun)
			db := filepath.Join(dir, DatabaseFile)
			if !tc.keepMarker {
				if err := os.Remove(filepath.Join(dir, DatabaseMarker)); err != nil {
					t.Fatal(err)
				}
			}
			if tc.remove {
				_ = os.Remove(db)
			} else if err := os.Truncate(db, 0); err != nil {
				t.Fatal(err)
			}
			_, err := openT(Config{DataDir: dir, LockTimeout: time.Second})
			var lost *DatabaseLostError
			if !errors.Is(err, ErrDatabaseLost) || !errors.As(err, &lost) {
				t.Fatalf("Open: %v, want a DatabaseLostError", err)
			}
			for _, want := range []string{db, tc.want, "kayoctl --data-dir " + dir + " restore", "to start over"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %s", want, err)
				}
			}
			st, serr := os.Stat(db)
			if tc.remove && serr == nil || !tc.remove && (serr != nil || st.Size() != 0) {
				t.Fatalf("the database file was written: %v %v", st, serr)
			}
		})
	}
	t.Run("no evidence: a new database", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, DatabaseFile), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		e, err := openT(Config{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		e.Close()
		if _, err := os.Stat(filepath.Join(dir, DatabaseMarker)); err != nil {
			t.Fatalf("no marker after creating the database: %v", err)
		}
	})
}

// A damaged database file is an error naming it, never a panic.
func TestOpenDamagedDatabase(t *testing.T) {
	dir := existedDataDir(t, false)
	db := filepath.Join(dir, DatabaseFile)
	if err := os.Truncate(db, 8192); err != nil {
		t.Fatal(err)
	}
	_, err := openT(Config{DataDir: dir, LockTimeout: time.Second})
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), db) || !strings.Contains(err.Error(), "kayoctl restore") {
		t.Fatalf("Open on a truncated database: %v", err)
	}
}
