package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/store"
)

// Releasing a node agent's long-lived mounts. A node agent's work
// executor (internal/nodeagent/workexec) holds a Kayo FS mount of every
// volume its node mounts for as long as it runs (docs/ARCHITECTURE.md,
// "A node agent's mounts"). Another process that must mount the node
// (the control plane deleting the volume, unmounting a node that left, a
// quick migration's saved state, kayoctl volume cp) asks the agent to let
// go first (workVolumeRelease): the agent detaches and does not mount
// that volume again for the hold the request names.

// Holds of a release: a deletion or unmount keeps the agent off the
// volume for the lock timeout (its record is gone by then), a loan for a
// moment (the borrower's mount detaches once idle; the agent's mount
// waits for it).
const (
	releaseHoldDelete = DefaultLockTimeout
	releaseHoldLend   = time.Second
)

type volumeReleaseArgs struct {
	Volume string        `json:"volume"`
	Hold   time.Duration `json:"hold"`
}

// releaseAgentMounts asks the agent of each node of nodes whose agent is
// up to let go of its mount of volume id and stay off it for hold, and
// waits for them. A node without an agent holds no mount.
func (e *Engine) releaseAgentMounts(ctx context.Context, id string, nodes []string, hold time.Duration) error {
	args, err := json.Marshal(volumeReleaseArgs{Volume: id, Hold: hold})
	if err != nil {
		return err
	}
	for _, n := range nodes {
		if e.rt.mounts.pinned(id, n) {
			continue // this runtime's agent: the caller shares its mount
		}
		if !e.remoteDB {
			if until, ok := e.work.noAgent.Load(n); ok && time.Now().Before(until.(time.Time)) {
				continue // known without an agent a moment ago (workTarget)
			}
		}
		if err := e.workAgentUp(ctx, n); errors.Is(err, ErrAgentDown) {
			continue
		} else if err != nil {
			return err
		}
		if err := e.releaseAgentMount(ctx, n, id, args); err != nil {
			return fmt.Errorf("asking node %s's agent to release its mount of volume %s: %w", n, id, err)
		}
	}
	return nil
}

// releaseAgentMount asks node's agent to release its mount of volume id.
// Callers releasing one volume at once (two files deleted in one apply)
// share the request's object: one that is superseded asks again, which
// is harmless (a release is idempotent).
func (e *Engine) releaseAgentMount(ctx context.Context, node, id string, args []byte) error {
	obj := volumeMountWorkObject(id)
	for {
		res, err := e.nodeWork(ctx, node, WorkRequest{Op: workVolumeRelease, Object: obj, Args: args})
		if errors.Is(err, ErrBusy) {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return err
		}
		// Read: its result has served. Deleted only if still ours: another
		// caller's result may have replaced it.
		var cur workResult
		if rev, gerr := getJSON(ctx, e.st, nodeWorkResKey(node, obj), &cur); gerr == nil && cur.ID == res.ID {
			_, _ = e.st.Commit(ctx, []store.Cmp{store.At(nodeWorkResKey(node, obj), rev)}, []store.Op{store.Del(nodeWorkResKey(node, obj))})
		}
		return nil
	}
}

// executorFor marks ctx as the work of node's executor: its mounts of
// node are its own (or its agent's), never borrowed from an agent.
type executorFor struct{}

func withExecutor(ctx context.Context, node string) context.Context {
	return context.WithValue(ctx, executorFor{}, node)
}

func executingFor(ctx context.Context, node string) bool {
	n, _ := ctx.Value(executorFor{}).(string)
	return n == node
}

// lendMount has node's agent, when another process runs it, let go of
// its mount of volume id a moment so that this process can mount node
// (WithVolume outside the node's executor).
func (e *Engine) lendMount(ctx context.Context, id, node string) error {
	if executingFor(ctx, node) {
		return nil
	}
	return e.releaseAgentMounts(ctx, id, []string{node}, releaseHoldLend)
}
