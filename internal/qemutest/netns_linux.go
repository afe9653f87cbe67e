//go:build linux

package qemutest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNetNS runs f with the calling thread in network namespace ns (a name
// under /run/netns, as netnsrig makes them; "" this process's), so the
// sockets f opens belong to ns and stay there after it returns. f must
// open them on its own goroutine (a goroutine it starts runs on another
// thread, in this process's namespace).
func InNetNS(ns string, f func() error) error {
	if ns == "" {
		return f()
	}
	runtime.LockOSThread()
	self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer func() { _ = self.Close() }()
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer func() { _ = target.Close() }()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering network namespace %s: %w", ns, err)
	}
	defer func() {
		// A thread that cannot go back stays locked: it ends with the
		// goroutine instead of serving others in the wrong namespace.
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return f()
}

// binIn is a script that runs bin inside network namespace ns with the
// arguments and descriptors it is given (`ip netns exec` keeps them), so
// qemu.Launch can start QEMU in a rig's host.
func binIn(dir, ns, bin string) (string, error) {
	if ns == "" {
		return bin, nil
	}
	p := filepath.Join(dir, "in-"+ns+"-"+filepath.Base(bin))
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", ns, bin)
	return p, os.WriteFile(p, []byte(script), 0o755)
}
