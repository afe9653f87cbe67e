//go:build unix

package store

import (
	"os"
	"syscall"
)

// unlock releases the flock bbolt took on f. Closing f alone does not
// while bbolt's memory map of the file lives on (the map holds the open
// file, and with it the lock).
func unlock(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// tryLock takes f's lock exclusively if it is free, as a commit does.
func tryLock(f *os.File) (bool, error) {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == syscall.EWOULDBLOCK {
		return false, nil
	}
	return err == nil, err
}

// lockShared takes f's lock shared, waiting for it: the marker of
// bolt_turns.go, held exclusively only for the moment of a look
// (waitMark.others).
func lockShared(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_SH)
}
