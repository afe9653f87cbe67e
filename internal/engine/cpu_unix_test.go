//go:build unix

package engine

import (
	"syscall"
	"time"
)

// selfCPU is the user + sys time of this process so far: the benchmarks'
// CPU per phase, which a loaded machine disturbs less than wall time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
