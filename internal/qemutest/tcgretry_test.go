package qemutest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

const panicLine = "[    7.950182] Kernel panic - not syncing: Fatal exception in interrupt\n"

func TestGuestFault(t *testing.T) {
	for _, s := range []string{
		"[    9.165535] general protection fault, probably for non-canonical address 0xdead00000000012a: 0000 [#1]",
		"[   12.1] BUG: Bad rss-counter state mm:000000001",
		panicLine,
	} {
		if !GuestFault.MatchString(s) {
			t.Errorf("%q is not seen as a guest fault", s)
		}
	}
	for _, s := range []string{"kayo-guest: alive n=3 disk=[kayo-guest-tick id=1 n=3] dvd=[KAYO_TOOLS]", "[    0.1] Booting paravirtualized kernel"} {
		if GuestFault.MatchString(s) {
			t.Errorf("%q is seen as a guest fault", s)
		}
	}
}

// A fault under TCG is run again; the second attempt's pass is the test's.
func TestRetryOnTCGFaultRunsAgain(t *testing.T) {
	t.Setenv("KAYO_QEMU_ACCEL", "tcg")
	setups := 0
	RetryOnTCGFault(t, 2, func() func(*Attempt) {
		setups++
		n := setups
		return func(a *Attempt) {
			if n == 1 && a.GuestFaulted([]byte(panicLine)) {
				a.Fatal("the guest faulted")
			}
		}
	})
	if setups != 2 {
		t.Fatalf("%d setups, want 2 (a fresh lab for the second attempt)", setups)
	}
}

// retryChild is a scenario run in a child process (it must fail there).
const retryChild = "KAYO_QEMUTEST_RETRY_CHILD"

func TestRetryOnTCGFaultChild(t *testing.T) {
	scenario := os.Getenv(retryChild)
	if scenario == "" {
		t.Skip("run by TestRetryOnTCGFaultFails")
	}
	t.Setenv("KAYO_QEMU_ACCEL", "tcg")
	if scenario == "kvm" {
		t.Setenv("KAYO_QEMU_ACCEL", "kvm")
	}
	RetryOnTCGFault(t, 2, func() func(*Attempt) {
		t.Log("setup")
		return func(a *Attempt) {
			switch scenario {
			case "other":
				a.Fatalf("a check failed: %s", "disk tick lost")
			default: // "fault", "kvm": faults every time
				a.GuestFaulted([]byte(panicLine))
				a.Fatal("the guest faulted")
			}
		}
	})
}

// Any failure but a TCG fault fails at once; a fault in every attempt
// fails; under KVM a fault is not retried.
func TestRetryOnTCGFaultFails(t *testing.T) {
	for _, c := range []struct {
		scenario string
		setups   int
		want     []string
	}{
		{"other", 1, []string{"attempt 1 failed:", "a check failed: disk tick lost"}},
		{"fault", 2, []string{"attempt 2 failed (the guest's kernel faulted after a live migration under TCG in each of 2 attempts)"}},
		{"kvm", 1, []string{"attempt 1 failed:", "the guest faulted"}},
	} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestRetryOnTCGFaultChild$", "-test.v")
		cmd.Env = append(os.Environ(), retryChild+"="+c.scenario)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Errorf("%s: the child passed:\n%s", c.scenario, out)
			continue
		}
		if n := strings.Count(string(out), "setup"); n != c.setups {
			t.Errorf("%s: %d setups, want %d:\n%s", c.scenario, n, c.setups, out)
		}
		for _, w := range c.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("%s: the output lacks %q:\n%s", c.scenario, w, out)
			}
		}
	}
}
