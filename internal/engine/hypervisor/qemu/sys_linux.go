package qemu

import (
	"fmt"
	"os"
	"syscall"
)

// sysProcAttr: own process group, SIGKILL when the launching thread's
// process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// SocketPair returns the two ends of a unix stream socket pair: ours
// non-blocking (Go's poller: Close interrupts a blocked read or write),
// theirs blocking, for QEMU.
func SocketPair() (ours, theirs *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		_ = syscall.Close(fds[0])
		_ = syscall.Close(fds[1])
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "kayo-state-0"), os.NewFile(uintptr(fds[1]), "kayo-state-1"), nil
}

// stopProcess freezes p (SIGSTOP).
func stopProcess(p *os.Process) error { return p.Signal(syscall.SIGSTOP) }

// unixRights is the SCM_RIGHTS message passing f.
func unixRights(f *os.File) []byte { return syscall.UnixRights(int(f.Fd())) }
