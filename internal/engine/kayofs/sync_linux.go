package kayofs

import (
	"os"
	"syscall"
)

// datasync flushes the device's data and whatever metadata reading it back
// needs (size, block allocation of a sparse image), not its timestamps:
// fdatasync(2) is all a transaction's ordering points need.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
