//go:build linux

package engine

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestPidAliveZombie: an exited process nobody reaped (a killed CLI's
// plugin adopted by a container init that reaps nothing) holds no
// operation; a running one does.
func TestPidAliveZombie(t *testing.T) {
	if !pidAlive(os.Getpid()) {
		t.Fatal("pidAlive(own pid) = false")
	}
	cmd := exec.Command("sleep", "0.01")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	deadline := time.Now().Add(10 * time.Second)
	for !zombie(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d never became a zombie", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if pidAlive(pid) {
		t.Errorf("pidAlive(%d) = true for a zombie (exited, not reaped)", pid)
	}
}
