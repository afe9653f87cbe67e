//go:build !linux

package kayofs

import "os"

func datasync(f *os.File) error { return f.Sync() }
