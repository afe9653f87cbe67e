package qemurun

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/record"
	"github.com/kayo-labs/terraform-provider-kayo/internal/enginetest"
)

// The seed's hosts and specs (internal/enginetest).
const (
	y21 = enginetest.Y21
	y22 = enginetest.Y22
)

var (
	seedSpec    = enginetest.SeedSpec
	seedCluster = enginetest.SeedCluster
	vmSpec      = enginetest.VMSpec
)

func mustHosts(t *testing.T, e *engine.Engine, specs ...engine.HostSpec) {
	t.Helper()
	enginetest.MustHosts(t, e, specs...)
}

// runnerUp says why node's runner is not up (nil: its heartbeat is fresh).
func runnerUp(ctx context.Context, e *engine.Engine, node string) error {
	var b qemu.AgentBeat
	if _, err := record.Get(ctx, e.Store(), qemu.AgentKey(node), &b); err != nil {
		return err
	}
	if !b.Stopped.IsZero() {
		return errors.New("stopped")
	}
	if age := e.Now().Sub(b.Time); age > qemu.AgentTimeout {
		return fmt.Errorf("last heartbeat %s ago", age.Round(time.Millisecond))
	}
	return nil
}

// vmFile reads a VHD file on a volume (as internal/engine/vms_files.go).
type vmFile struct{ *kayofs.File }

func (f vmFile) Allocate(off, n int64) error { return f.File.Allocate(off + n) }
