package qemurun

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// Quick migration in the QEMU executor of a node agent: the guest's state
// saved into the VM's .vsv file on the Kayo FS volume and restored from it.

// stateFile opens the VM's saved-state file on the volume.
func (q *Runner) stateFile(ctx context.Context, cluster, name string, create bool) (*kayofs.File, func(), error) {
	vm, err := q.e.GetVM(ctx, cluster, name)
	if err != nil {
		return nil, nil, err
	}
	paths, err := engine.PathsFor(vm.DriveLetter, vm.Name)
	if err != nil {
		return nil, nil, err
	}
	fv, err := q.mount(ctx, vm.Volume)
	if err != nil {
		return nil, nil, err
	}
	release := func() { q.unmount(vm.Volume) }
	var f *kayofs.File
	if create {
		f, err = openOrCreate(fv, paths.VolState)
	} else {
		f, err = fv.Open(paths.VolState)
	}
	if err != nil {
		release()
		return nil, nil, fmt.Errorf("%s: %w", paths.State, err)
	}
	return f, release, nil
}

const stateHeaderSize = 4096

type qemuStateHeader struct {
	Magic string           `json:"magic"`
	Name  string           `json:"name"`
	Node  string           `json:"node"`
	Token hypervisor.Token `json:"token"`
	Bytes int64            `json:"bytes"`
}

const qemuStateMagic = "KAYO-QEMU-SAVED-STATE-1"

// saveState pauses the guest and migrates its state into the VM's .vsv
// file on the volume (QMP migrate into a socket pair only this agent and
// the QEMU process hold, copied into the Kayo FS file), then ends the
// source QEMU: quick migration's first half. Every wait ends with ctx
// (the request's deadline); a save that fails lets the guest run on
// here, and says so.
func (q *Runner) saveState(ctx context.Context, cluster string, v *qemuVMRun, r qemu.Request, res *qemu.Result, report func(hypervisor.Progress)) (err error) {
	if v.rec.State == hypervisor.Saved && v.rec.Token == r.Token {
		return nil
	}
	if v.m == nil || v.rec.Token != r.Token {
		return fmt.Errorf("VM %q does not run on %s with token %d: %w", r.VM.Name, q.node, r.Token, hypervisor.ErrState)
	}
	f, release, err := q.stateFile(ctx, cluster, v.name, true)
	if err != nil {
		return err
	}
	defer release()
	if err := f.Truncate(0); err != nil {
		return err
	}
	m, saved := v.m, false
	defer func() {
		if err != nil && !saved {
			err = fmt.Errorf("saving the state of VM %q on %s: %w; %s", v.name, q.node, err, q.unpause(m))
		}
	}()
	if _, err := m.QMP.Execute(ctx, "stop", nil); err != nil {
		return err
	}
	stream, err := m.SaveState(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = stream.Close() }()
	copied := make(chan error, 1)
	var n int64
	go func() {
		var err error
		n, err = copyState(stream, f)
		if err != nil {
			_ = stream.Close() // QEMU's write fails: the migration ends
		}
		copied <- err
	}()
	report(hypervisor.Progress{Phase: "save", Percent: 0})
	if _, err := m.QMP.WaitMigration(ctx, 10*time.Millisecond, nil); err != nil {
		return err
	}
	// QEMU closed its end: the copy ends at EOF (or with ctx).
	select {
	case err = <-copied:
	case <-ctx.Done():
		_ = stream.Close()
		<-copied
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("writing the saved state: %w", err)
	}
	if n == 0 {
		return errors.New("QEMU wrote no state")
	}
	hdr, _ := json.Marshal(qemuStateHeader{Magic: qemuStateMagic, Name: v.name, Node: q.node, Token: r.Token, Bytes: n})
	blk := make([]byte, stateHeaderSize)
	copy(blk, hdr)
	if _, err := f.WriteAt(blk, 0); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	saved = true
	// The state is durable: the source is fenced and ends before anyone
	// restores.
	v.fenceExports()
	q.stopMachine(ctx, v)
	res.Bytes = n
	report(hypervisor.Progress{Phase: "save", Percent: 100})
	v.rec.State, v.rec.Reason = hypervisor.Saved, "state saved to the volume"
	return q.save(ctx, cluster, v)
}

// unpause cancels a failed save and lets the guest run on (the source
// still owns the VM); it says what became of it.
func (q *Runner) unpause(m *qemu.Machine) string {
	// Detached: it runs after the save failed, often because its
	// request's context ended.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if done, _ := m.Exited(); done {
		return "its QEMU exited: the guest's memory state is lost"
	}
	_, _ = m.QMP.Execute(ctx, "migrate_cancel", nil)
	for i := 0; i < 200; i++ {
		mi, err := m.QMP.QueryMigrate(ctx)
		if err != nil || (mi.Status != "active" && mi.Status != "cancelling" && mi.Status != "setup" && mi.Status != "device") {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := m.QMP.Execute(ctx, "cont", nil); err != nil {
		if waitExit(ctx, m, 2*time.Second) {
			return "its QEMU exited: the guest's memory state is lost"
		}
		return fmt.Sprintf("the guest stays paused here (resuming it failed: %v)", err)
	}
	return "the guest runs on here, nothing was moved"
}

// copyState copies a saved-state stream to f after its header block.
func copyState(r io.Reader, f *kayofs.File) (int64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	buf := make([]byte, 1<<20)
	off := int64(stateHeaderSize)
	for {
		k, rerr := io.ReadFull(br, buf)
		if k > 0 {
			if _, err := f.WriteAt(buf[:k], off); err != nil {
				return off - stateHeaderSize, err
			}
			off += int64(k)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return off - stateHeaderSize, nil
		}
		if rerr != nil {
			return off - stateHeaderSize, rerr
		}
	}
}

// restore starts QEMU loading the saved state from the volume through an
// inherited descriptor (no listener), then runs the guest.
func (q *Runner) restore(ctx context.Context, cluster string, v *qemuVMRun, r qemu.Request, report func(hypervisor.Progress)) error {
	if v.m != nil && v.rec.State == hypervisor.Running && v.rec.Token == r.Token {
		return nil
	}
	f, release, err := q.stateFile(ctx, cluster, v.name, false)
	if err != nil {
		return err
	}
	defer release()
	blk := make([]byte, stateHeaderSize)
	if _, err := f.ReadAt(blk, 0); err != nil {
		return fmt.Errorf("reading the saved state: %w", err)
	}
	var hdr qemuStateHeader
	if err := json.Unmarshal(trimNUL(blk), &hdr); err != nil || hdr.Magic != qemuStateMagic || hdr.Name != v.name || hdr.Bytes <= 0 {
		return fmt.Errorf("the saved-state file of VM %q holds no QEMU state of it: %w", v.name, hypervisor.ErrState)
	}
	q.stopMachine(ctx, v)
	ours, theirs, err := qemu.SocketPair()
	if err != nil {
		return err
	}
	defer func() { _ = ours.Close() }()
	err = q.launch(ctx, cluster, v, r, "fd", theirs)
	_ = theirs.Close()
	if err != nil {
		return err
	}
	report(hypervisor.Progress{Phase: "restore", Percent: 0})
	streamed := make(chan error, 1)
	go func() {
		_, err := io.Copy(ours, io.NewSectionReader(f, stateHeaderSize, hdr.Bytes))
		_ = ours.Close() // EOF: the stream is complete
		streamed <- err
	}()
	select {
	case err = <-streamed:
	case <-ctx.Done():
		_ = ours.Close()
		<-streamed
		err = ctx.Err()
	}
	if err != nil {
		q.stopMachine(ctx, v)
		return fmt.Errorf("streaming the saved state: %w", err)
	}
	v.rec.State, v.rec.Token, v.rec.VM = qemu.Incoming, r.Token, r.VM
	for {
		q.refreshState(ctx, v)
		if v.rec.State != qemu.Incoming {
			break
		}
		if done, _ := v.m.Exited(); done {
			return fmt.Errorf("VM %q: QEMU exited while loading the saved state", v.name)
		}
		select {
		case <-ctx.Done():
			q.stopMachine(ctx, v)
			return fmt.Errorf("VM %q: loading the saved state: %w", v.name, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	if _, err := v.m.QMP.Execute(ctx, "cont", nil); err != nil {
		return err
	}
	report(hypervisor.Progress{Phase: "restore", Percent: 100})
	v.rec.State, v.rec.Reason = hypervisor.Running, ""
	v.rec.Boots++
	return q.save(ctx, cluster, v)
}

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// waitExit waits up to d for m's process to exit: a QMP error often comes
// just before the exit is seen.
func waitExit(ctx context.Context, m *qemu.Machine, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-m.Done():
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

// openOrCreate opens the file at p on fv, creating it when missing.
func openOrCreate(fv *kayofs.Volume, p string) (*kayofs.File, error) {
	f, err := fv.Open(p)
	if errors.Is(err, kayofs.ErrNotExist) {
		return fv.Create(p)
	}
	return f, err
}
