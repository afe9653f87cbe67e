//go:build linux

package vhd

import (
	"os"
	"syscall"
)

// allocatedBytes is the space the file system allocated for the file.
func allocatedBytes(st os.FileInfo) int64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Blocks * 512
	}
	return -1
}
