//go:build unix

package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// A put SIGKILLed midway converges on the next apply: the node's agent
// killed while it writes a batch of chunks (restarted, it redoes the
// request), or the caller (the provider) killed with a batch's chunks in
// the database (the next put takes the file over and deletes the dead
// put's chunks). The volume checks clean and no chunk is left.

const putCrashEnv = "KAYO_PUT_CRASH_DIR"

// TestVolumeFilePutCrashHelper is the process that gets killed: node
// y21's agent, or a caller that puts KAYO_PUT_CRASH_SRC. It is killed at
// the KAYO_PUT_CRASH_AT-th batch's KAYO_PUT_CRASH_PHASE. It does nothing
// in a normal test run.
func TestVolumeFilePutCrashHelper(t *testing.T) {
	dir := os.Getenv(putCrashEnv)
	if dir == "" {
		t.Skip("helper process of TestVolumeFilePutKilled")
	}
	phase, at := os.Getenv("KAYO_PUT_CRASH_PHASE"), os.Getenv("KAYO_PUT_CRASH_AT")
	e, err := openT(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	e.workHook = func(_ string, _ func(), op, ph string) {
		if op != workVolumeFilePut || ph != phase {
			return
		}
		if n++; strconv.Itoa(n) == at {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if os.Getenv("KAYO_PUT_CRASH_ROLE") == "agent" {
		_ = runWorkAgent(ctx, e, y21, nil)
	} else {
		_, err = e.PutVolumeFile(ctx, VolumeFileSpec{Volume: os.Getenv("KAYO_PUT_CRASH_VOL"), Path: `isos\base.bin`,
			Source: os.Getenv("KAYO_PUT_CRASH_SRC")})
		t.Logf("put: %v", err)
	}
	t.Fatal("the helper was not killed")
}

func TestVolumeFilePutKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess crash test")
	}
	// 9 MiB and a bit: 19 chunks, 3 batches.
	for _, c := range []struct {
		role, phase string
		at          int
	}{
		{"agent", "before", 2}, {"agent", "after", 3},
		{"caller", "before", 2}, {"caller", "after", 3},
	} {
		t.Run(fmt.Sprintf("%s/%s-batch-%d", c.role, c.phase, c.at), func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			e, vol := workEnv(t, dir)
			src, data := putSource(t, 9)
			spec := VolumeFileSpec{Volume: vol.ID, Path: `isos\base.bin`, Source: src}
			env := []string{putCrashEnv + "=" + dir, "KAYO_PUT_CRASH_ROLE=" + c.role, "KAYO_PUT_CRASH_PHASE=" + c.phase,
				"KAYO_PUT_CRASH_AT=" + strconv.Itoa(c.at), "KAYO_PUT_CRASH_SRC=" + src, "KAYO_PUT_CRASH_VOL=" + vol.ID}
			if c.role == "agent" {
				killed := crashAgent(t, e, "TestVolumeFilePutCrashHelper", env...)
				put := make(chan error, 1)
				go func() { _, err := e.PutVolumeFile(ctx, spec); put <- err }()
				killed(c.phase + " a batch")
				startWorkAgent(t, openWorkEngine(t, dir), y21)
				select {
				case err := <-put:
					if err != nil {
						t.Fatal(err)
					}
				case <-time.After(2 * time.Minute):
					t.Fatal("the put did not converge")
				}
			} else {
				cmd := exec.Command(os.Args[0], "-test.run=^TestVolumeFilePutCrashHelper$", "-test.count=1")
				cmd.Env = append(os.Environ(), env...)
				out, err := cmd.CombinedOutput()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
					t.Fatalf("the caller was not killed: %v\n%s", err, out)
				}
				if f, err := e.GetVolumeFile(ctx, vol.ID, spec.Path); err != nil || !f.Writing {
					t.Fatalf("after the caller's kill the record is %+v, %v; want Writing", f, err)
				}
				if c.phase == "before" {
					if kvs, _, err := e.st.List(ctx, volumeFileChunksPrefix); err != nil || len(kvs) == 0 {
						t.Fatalf("the killed put left no chunks to collect (%v): the test kills it too late", err)
					}
				}
				// The next apply.
				if _, err := e.PutVolumeFile(ctx, spec); err != nil {
					t.Fatal(err)
				}
			}
			f, err := e.GetVolumeFile(ctx, vol.ID, spec.Path)
			if err != nil || f.Writing || f.SizeBytes != int64(len(data)) {
				t.Fatalf("the file's record: %+v %v", f, err)
			}
			if got := volumeFileBytes(t, e, vol.ID, y22, "isos/base.bin"); !bytes.Equal(got, data) {
				t.Errorf("the volume holds %d bytes that differ from the %d put", len(got), len(data))
			}
			noPutChunks(t, e)
			noWorkRecords(t, e)
			e.releaseVolumeMounts(vol.ID)
			volumeClean(t, vol)
		})
	}
}
