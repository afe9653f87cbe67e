//go:build !linux

package kayofs

import (
	"errors"
	"os"
)

func openDirect(path string, flags int) (*os.File, error) {
	return nil, errors.New("kayofs: direct I/O on a shared LUN needs Linux (O_DIRECT)")
}
