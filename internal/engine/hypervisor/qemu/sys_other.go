//go:build !linux

package qemu

import (
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func syncData(f *os.File) error { return f.Sync() }
