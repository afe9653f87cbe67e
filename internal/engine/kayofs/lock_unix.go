//go:build unix

package kayofs

import "syscall"

const (
	lkRead   = int16(syscall.F_RDLCK)
	lkWrite  = int16(syscall.F_WRLCK)
	lkUnlock = int16(syscall.F_UNLCK)
)

// ofdFcntl runs one OFD lock command on byte off of fd and returns the
// lock type the kernel reports (F_OFD_GETLK's answer).
func ofdFcntl(fd uintptr, cmd int, typ int16, off int64) (int16, error) {
	return ofdFcntlN(fd, cmd, typ, off, 1)
}

// ofdFcntlN is ofdFcntl on the n bytes from off: one lock over n keys.
func ofdFcntlN(fd uintptr, cmd int, typ int16, off, n int64) (int16, error) {
	lk := syscall.Flock_t{Type: typ, Whence: 0, Start: off, Len: n}
	for {
		err := syscall.FcntlFlock(fd, cmd, &lk)
		if err == syscall.EINTR {
			continue
		}
		return lk.Type, err
	}
}

// isContended: the lock is held by another descriptor.
func isContended(err error) bool { return err == syscall.EAGAIN || err == syscall.EACCES }
