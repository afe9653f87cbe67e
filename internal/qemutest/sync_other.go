//go:build !linux

package qemutest

import "os"

func syncData(f *os.File) error { return f.Sync() }
