package qemu

import (
	"errors"
	"os"
	"syscall"
)

// The provider binary builds for Windows (its release archives); the qemu
// driver runs only in Linux node agents.
var errNeedsLinux = errors.New("the qemu driver needs Linux")

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

// SocketPair: the qemu driver needs Linux.
func SocketPair() (*os.File, *os.File, error) { return nil, nil, errNeedsLinux }

func stopProcess(p *os.Process) error { return errNeedsLinux }

func unixRights(f *os.File) []byte { return nil }
