//go:build !unix

package kayofs

import "errors"

const (
	lkRead   int16 = 0
	lkWrite  int16 = 1
	lkUnlock int16 = 2
)

// errNoOFD: the provider binary builds for Windows (its release archives), but
// mounting Kayo FS needs Linux's OFD locks; the node agents run on Linux.
var errNoOFD = errors.New("kayofs: mounting a volume needs Linux (OFD locks); run the node agents on Linux")

func ofdFcntl(fd uintptr, cmd int, typ int16, off int64) (int16, error) { return 0, errNoOFD }

func ofdFcntlN(fd uintptr, cmd int, typ int16, off, n int64) (int16, error) { return 0, errNoOFD }

func isContended(err error) bool { return false }
