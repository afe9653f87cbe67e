package qemutest

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/hostfacts"
)

// A live migration on QEMU 7.2 with TCG (the lab's accelerator without
// /dev/kvm) can lose a page the guest wrote during the move: TCG keeps a
// TLB entry that skips dirty tracking when a vCPU's TLB fill or
// notdirty_write races with the migration clearing that page's dirty bit
// (docs/ARCHITECTURE.md, "Guests under TCG"). The target then resumes a
// guest whose memory mixes two moments, and its kernel faults (a timer
// list with a poisoned entry, a bad slab). KVM tracks dirty pages in the
// hardware and has no such race. RetryOnTCGFault runs a test that
// live-migrates a guest once more when, and only when, an attempt saw
// that guest's kernel fault on the target's console under TCG; any other
// failure fails the test at once, and a second fault fails it too.

// GuestFault matches a guest kernel's fault report on a serial console.
var GuestFault = regexp.MustCompile(`(?m)\] (general protection fault|BUG: |Oops: |Kernel panic - )`)

// Attempt is the testing.T of one attempt: its failures are recorded and
// logged, and end the attempt, not the test.
type Attempt struct {
	*testing.T
	mu       sync.Mutex
	failed   bool
	msgs     []string
	tcgFault bool
}

func (a *Attempt) record(msg string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.failed = true
	a.msgs = append(a.msgs, msg)
	a.Log("attempt failed: " + msg)
}

// Fail, FailNow, Failed, Error(f) and Fatal(f) are testing.T's, for the attempt.
func (a *Attempt) Fail() { a.record("failed") }
func (a *Attempt) FailNow() {
	a.Fail()
	runtime.Goexit()
}
func (a *Attempt) Failed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.failed
}
func (a *Attempt) Error(args ...any)                 { a.record(fmt.Sprint(args...)) }
func (a *Attempt) Errorf(format string, args ...any) { a.record(fmt.Sprintf(format, args...)) }
func (a *Attempt) Fatal(args ...any) {
	a.record(fmt.Sprint(args...))
	runtime.Goexit()
}
func (a *Attempt) Fatalf(format string, args ...any) {
	a.record(fmt.Sprintf(format, args...))
	runtime.Goexit()
}

// GuestFaulted reports whether console (a target's serial log after a
// live migration) shows the guest's kernel faulting, and notes it for
// RetryOnTCGFault when the node runs its guests under TCG.
func (a *Attempt) GuestFaulted(console []byte) bool {
	if !GuestFault.Match(console) {
		return false
	}
	if labAccel() == "tcg" {
		a.mu.Lock()
		a.tcgFault = true
		a.mu.Unlock()
	}
	return true
}

// labAccel is the accelerator the lab's agents choose (as
// internal/nodeagent/qemurun's qemuAccel does).
func labAccel() string {
	if a := os.Getenv("KAYO_QEMU_ACCEL"); a == "kvm" || a == "tcg" {
		return a
	}
	return hostfacts.Accel("/dev/kvm")
}

// RetryOnTCGFault runs an attempt of a test: setup runs on the test's
// goroutine (a fresh lab each time) and returns the attempt's body, which
// runs with an Attempt as its testing.T. A failed attempt whose guest
// faulted after a live migration under TCG (Attempt.GuestFaulted) is run
// again, up to attempts times in all; any other failure fails t.
func RetryOnTCGFault(t *testing.T, attempts int, setup func() func(a *Attempt)) {
	t.Helper()
	for i := 1; ; i++ {
		body := setup()
		if t.Failed() || t.Skipped() {
			return
		}
		a := &Attempt{T: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			body(a)
		}()
		<-done
		if t.Failed() || t.Skipped() || !a.Failed() {
			return
		}
		if a.tcgFault && i < attempts {
			t.Logf("attempt %d of %d: the guest's kernel faulted right after a live migration under TCG (QEMU 7.2's dirty-tracking race, see internal/qemutest/tcgretry.go); running the test again", i, attempts)
			continue
		}
		why := ""
		if a.tcgFault {
			why = fmt.Sprintf(" (the guest's kernel faulted after a live migration under TCG in each of %d attempts)", attempts)
		}
		t.Fatalf("attempt %d failed%s:\n%s", i, why, strings.Join(a.msgs, "\n"))
	}
}
