package qemu

import "syscall"

// sysProcAttr: own process group, SIGKILL when the launching thread's
// process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
