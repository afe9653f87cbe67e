package etcdtest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the etcd member when the test
// process dies, so a crashed test leaves no server behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
