package privsock

import (
	"io/fs"
	"net"
	"syscall"
)

// PeerCred returns c's peer credentials (SO_PEERCRED); ok is true.
func PeerCred(c *net.UnixConn) (Cred, bool, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return Cred{}, false, err
	}
	var uc *syscall.Ucred
	var serr error
	if err := rc.Control(func(fd uintptr) {
		uc, serr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return Cred{}, false, err
	}
	if serr != nil {
		return Cred{}, false, serr
	}
	return Cred{PID: int(uc.Pid), UID: int(uc.Uid), GID: int(uc.Gid)}, true, nil
}

func owner(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
