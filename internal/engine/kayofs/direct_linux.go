package kayofs

import (
	"os"
	"syscall"
)

const oDirect = syscall.O_DIRECT

func openDirect(path string, flags int) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|oDirect|flags, 0)
}
