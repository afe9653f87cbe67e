//go:build unix

package engine

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// A node agent SIGKILLed while it formats a new volume's LUN: after the
// intent recorded Writing, before any write ("writing"); in the middle of
// kayofs.Format, its primary superblock written and the backup not
// ("mid": the LUN probes as a Kayo FS, which must not be accepted); and
// after the format but before Formatted was recorded ("formatted"). Once
// an agent of the node runs again (restart), or the caller's engine takes
// the request over (takeover, embedded database), the creation converges:
// the format is redone from scratch, the volume checks clean, and no
// intent or node-work record is left.

const formatCrashEnv = "KAYO_FORMAT_CRASH_DIR"

// TestVolumeFormatCrashHelper is the agent that gets killed. It does
// nothing in a normal test run.
func TestVolumeFormatCrashHelper(t *testing.T) {
	dir := os.Getenv(formatCrashEnv)
	if dir == "" {
		t.Skip("helper process of TestVolumeFormatAgentKilled")
	}
	phase := os.Getenv("KAYO_FORMAT_CRASH_PHASE")
	e, err := openT(Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	kill := func() {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		time.Sleep(time.Minute)
	}
	e.workHook = func(_ string, _ func(), op, ph string) {
		if op == WorkVolumeFormat && (phase == "writing" && ph == "format" || phase == "formatted" && ph == "formatted") {
			kill()
		}
	}
	if phase == "mid" {
		e.formatDevice = func(d kayofs.Device) kayofs.Device {
			return &killingDevice{FileDevice: d.(*kayofs.FileDevice), kill: kill}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = runWorkAgent(ctx, e, y21, nil)
	t.Fatal("the agent was not killed: no volume was formatted")
}

// killingDevice kills the process at the sync that follows the primary
// superblock's write (block 0): the backup is never written.
type killingDevice struct {
	*kayofs.FileDevice
	kill    func()
	primary bool
}

func (d *killingDevice) WriteAt(b []byte, off int64) (int, error) {
	n, err := d.FileDevice.WriteAt(b, off)
	if off == 0 {
		d.primary = true
	}
	return n, err
}

func (d *killingDevice) Sync() error {
	err := d.FileDevice.Sync()
	if d.primary {
		d.kill()
	}
	return err
}

func TestVolumeFormatAgentKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess crash test")
	}
	for _, phase := range []string{"writing", "mid", "formatted"} {
		for _, recover := range []string{"restart", "takeover"} {
			t.Run(phase+"/"+recover, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				dir := t.TempDir()
				e := openWorkEngine(t, dir)
				var log workLog
				if recover == "takeover" {
					e.workHook = log.hook
				}
				mustHosts(t, e, seedSpec(y21, 21), seedSpec(y22, 22))
				if _, err := e.CreateCluster(ctx, seedCluster("HVCLUSTER", y21, y22)); err != nil {
					t.Fatal(err)
				}
				killed := crashAgent(t, e, "TestVolumeFormatCrashHelper", formatCrashEnv+"="+dir, "KAYO_FORMAT_CRASH_PHASE="+phase)
				spec := VolumeSpec{Cluster: "HVCLUSTER", LUN: "lun0", SizeGiB: 50, Label: "VMSTORE", DriveLetter: "O", BlockSize: 4096, NodeSlots: 16}
				created := make(chan error, 1)
				var vol Volume
				go func() {
					var err error
					vol, err = e.CreateVolume(ctx, spec)
					created <- err
				}()
				killed("at " + phase)
				// What the killed run left on the LUN.
				var half string
				if phase != "writing" {
					fd, err := kayofs.OpenDevice(e.LUNPath("lun0"))
					if err != nil {
						t.Fatal(err)
					}
					sb, err := kayofs.ReadSuperblock(fd)
					_ = fd.Close()
					if err != nil {
						t.Fatalf("the killed run left no superblock at %s: %v", phase, err)
					}
					half = sb.UUIDString()
				}
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
				if n := log.count("", WorkVolumeFormat, "formatted"); n != 1 {
					t.Errorf("the format ran %d times after the kill (want 1, from scratch): %v", n, log.ran)
				}
				if recover == "restart" && log.count(WorkForAgent, WorkVolumeFormat, "after") != 1 {
					t.Errorf("the restarted agent did not finish the format: %v", log.ran)
				}
				if half != "" && vol.ID == half {
					t.Errorf("the volume is the Kayo FS the killed run left (%s); an unrecorded format must be redone", half)
				}
				fd, err := kayofs.OpenDevice(vol.Device)
				if err != nil {
					t.Fatal(err)
				}
				sb, err := kayofs.ReadSuperblock(fd)
				_ = fd.Close()
				if err != nil || sb.UUIDString() != vol.ID {
					t.Fatalf("the LUN holds %v (%v), the record says %s", sb, err, vol.ID)
				}
				if len(vol.Mounts) != 2 {
					t.Errorf("mounts %v, want both nodes", vol.Mounts)
				}
				if _, err := e.st.Get(ctx, volumeIntentKey("HVCLUSTER", "O")); !errors.Is(err, ErrNotFound) {
					t.Errorf("the creation's intent is left: %v", err)
				}
				noWorkRecords(t, e)
				volumeClean(t, vol)
			})
		}
	}
}
