package engine

import (
	"os"
	"path/filepath"
)

// SANDir is the directory of the embedded SAN inside the data dir: one
// sparse image file per LUN.
const SANDir = "san"

// LUNPath is where the embedded SAN keeps the LUN called name:
// <data_dir>/san/<name>.img. Every user of the embedded SAN (shared volumes,
// quorum witness disks) goes through it so they agree on one layout.
func (e *Engine) LUNPath(name string) string {
	return filepath.Join(e.dataDir, SANDir, name+".img")
}

// makeSANDir makes the directory of the embedded SAN LUN at path: the data
// dir owner-only first (on etcd it may not exist yet), then the SAN's.
func (e *Engine) makeSANDir(path string) error {
	if err := os.MkdirAll(e.dataDir, 0o700); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Dir(path), 0o755)
}
