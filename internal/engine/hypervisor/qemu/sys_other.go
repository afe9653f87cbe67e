//go:build !linux && !windows

package qemu

import (
	"errors"
	"os"
	"syscall"
)

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

// SocketPair: the qemu driver needs Linux.
func SocketPair() (*os.File, *os.File, error) {
	return nil, nil, errors.New("the qemu driver needs Linux")
}

func stopProcess(p *os.Process) error { return p.Signal(syscall.SIGSTOP) }

func unixRights(f *os.File) []byte { return syscall.UnixRights(int(f.Fd())) }
