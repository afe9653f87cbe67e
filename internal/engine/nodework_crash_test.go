//go:build unix

package engine

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A node agent SIGKILLed while it writes a new VM's files (before the
// work, or after it but before recording the result): the creation that
// waits converges once an agent of the node runs again (restart), or, on
// the embedded database, once the caller's engine takes the request over
// from the silent agent (takeover); the volume checks clean.

const workCrashEnv = "KAYO_WORK_CRASH_DIR"

// TestNodeWorkCrashHelper is the agent that gets killed. It does nothing
// in a normal test run.
func TestNodeWorkCrashHelper(t *testing.T) {
	dir := os.Getenv(workCrashEnv)
	if dir == "" {
		t.Skip("helper process of TestNodeWorkAgentKilled")
	}
	phase := os.Getenv("KAYO_WORK_CRASH_PHASE")
	e, err := openT(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	e.workHook = func(_ string, _ func(), op, ph string) {
		if op == workVMFiles && ph == phase {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = runWorkAgent(ctx, e, y21, nil)
	t.Fatal("the agent was not killed: no VM's files were written")
}

func TestNodeWorkAgentKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess crash test")
	}
	for _, phase := range []string{"before", "after"} {
		for _, recover := range []string{"restart", "takeover"} {
			t.Run(phase+"/"+recover, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				dir := t.TempDir()
				e, vol := workEnv(t, dir)
				killed := crashAgent(t, e, "TestNodeWorkCrashHelper", workCrashEnv+"="+dir, "KAYO_WORK_CRASH_PHASE="+phase)
				s := vmSpec(vol, "WEB01", 1024)
				s.OwnerNode = y21
				created := make(chan error, 1)
				var vm VM
				go func() {
					var err error
					vm, err = e.CreateVM(ctx, s)
					created <- err
				}()
				killed(phase + " the work")
				var log workLog
				if recover == "restart" {
					agent := openWorkEngine(t, dir)
					agent.workHook = log.hook
					startWorkAgent(t, agent, y21)
				}
				select {
				case err := <-created:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(2 * time.Minute):
					t.Fatal("the creation did not converge")
				}
				if recover == "restart" && log.count(WorkForAgent, workVMFiles, "after") != 1 {
					t.Errorf("the restarted agent did not write the files: %v", log.ran)
				}
				if vm.Status != VMRunning || vm.Pending != nil {
					t.Fatalf("after the crash: %+v", vm)
				}
				vmFilesGood(t, e, vm)
				noWorkRecords(t, e, vm)
				volumeClean(t, vol)
			})
		}
	}
}

// crashAgent starts the test binary's test helper as node y21's agent
// (env tells it where and when to kill itself) and waits until its
// executor reports. killed waits for its end and fails unless a SIGKILL
// ended it (at says when it should have).
func crashAgent(t *testing.T, e *Engine, helper string, env ...string) (killed func(at string)) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for e.workAgentUp(context.Background(), y21) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the helper agent never reported: %s", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return func(at string) {
		t.Helper()
		var ee *exec.ExitError
		if err := <-exited; !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("helper agent was not killed %s: %v\n%s", at, err, out)
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for a subprocess's two pipes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
