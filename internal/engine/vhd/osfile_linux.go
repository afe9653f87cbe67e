//go:build linux

package vhd

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

func allocate(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	for {
		err := syscall.Fallocate(int(f.Fd()), 0, off, n)
		if err == syscall.EINTR {
			continue
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, errors.ErrUnsupported) {
			return fmt.Errorf("fallocate: %w", errors.ErrUnsupported)
		}
		return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
	}
}
