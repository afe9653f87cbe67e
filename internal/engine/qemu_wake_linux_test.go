package engine

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/netnsrig"
)

// An agent in another network namespace (a lab's host) wakes the driver
// waiting for its result: the wake socket is a file in the data
// directory, which every namespace of the machine reaches. An abstract
// socket lives in one network namespace; the driver then polled every
// 25 ms for a whole live migration (bench/qemu_test.go).
func TestQEMUDriverWokenFromAnotherNetNS(t *testing.T) {
	netnsrig.SkipOrFail(t)
	rig := netnsrig.New(t, "Public")
	h := rig.AddHost("wake", map[string]netip.Prefix{"Public": netip.MustParsePrefix("192.0.2.9/24")})
	wake := make(chan struct{}, 1)
	addr, stop := listenWake(t.TempDir(), wake)
	defer stop()
	if addr == "" {
		t.Fatal("listenWake opened no socket")
	}
	done := make(chan error, 1)
	go func() { done <- inNetNS(h.NS, func() { qemu.Request{Notify: addr}.NotifyDriver() }) }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	select {
	case <-wake:
	case <-time.After(5 * time.Second):
		t.Fatalf("the driver's wake socket %s was not reached from network namespace %s", addr, h.NS)
	}
	stop()
	if _, err := os.Stat(addr); !os.IsNotExist(err) {
		t.Errorf("the wake socket %s is left behind (stat: %v)", addr, err)
	}
}

// inNetNS runs f on this goroutine's thread inside network namespace ns
// (a name under /run/netns), then returns the thread to its own.
func inNetNS(ns string, f func()) error {
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
		return err
	}
	f()
	if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
		runtime.UnlockOSThread()
	}
	return nil
}
