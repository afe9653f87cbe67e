// Package parentwatch tells a child process that the process which started
// it is gone. A provider plugin serves its CLI (terraform or tofu) over a
// socket the CLI dials, so nothing ends the plugin when the CLI is killed:
// go-plugin only stops on the CLI's shutdown call. The kernel reparents an
// orphan (to init or the nearest subreaper), so a parent pid that differs
// from the one the process started with means the parent died.
//
// Polling getppid is used rather than prctl(PR_SET_PDEATHSIG): that signal
// fires when the parent *thread* that forked exits, which in a Go parent
// can be any OS thread the runtime retires, not the process.
package parentwatch

import (
	"context"
	"os"
	"time"
)

// DefaultInterval is how often Wait looks at the parent pid: a getppid
// call, so cheap enough to make the CLI's death noticed within a blink.
const DefaultInterval = 200 * time.Millisecond

// Wait blocks until the parent of this process is gone (it returns nil)
// or ctx ends (it returns ctx.Err()). It checks every interval.
func Wait(ctx context.Context, interval time.Duration) error {
	return wait(ctx, os.Getppid, interval)
}

// wait is Wait with the parent pid's source given (tests).
func wait(ctx context.Context, getppid func() int, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultInterval
	}
	first := getppid()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if Gone(first, getppid()) {
				return nil
			}
		}
	}
}

// Gone reports whether a process whose parent was first and now is now has
// lost its parent. A process started by init (first == 1) is never
// reparented, so it never loses one this way.
func Gone(first, now int) bool { return first != 1 && now != first }
