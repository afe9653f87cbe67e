//go:build !linux

package kayofs

import "os"

func syncData(f *os.File) error { return f.Sync() }
