//go:build unix

package bench

import (
	"syscall"
	"time"
)

// childCPU is the user + sys time of this process's waited-for children
// (the CLI, and through it the plugins it ran).
func childCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
