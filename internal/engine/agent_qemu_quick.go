package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/hypervisor/qemu"
	"github.com/kayo-labs/terraform-provider-kayo/internal/engine/kayofs"
)

// Quick migration in the QEMU executor of a node agent: the guest's state
// saved into the VM's .vsv file on the Kayo FS volume and restored from it.

// stateFile opens the VM's saved-state file on the volume.
func (q *QEMUAgent) stateFile(ctx context.Context, cluster, name string, create bool) (*kayofs.File, func(), error) {
	vm, err := q.e.GetVM(ctx, cluster, name)
	if err != nil {
		return nil, nil, err
	}
	paths, err := PathsFor(vm.DriveLetter, vm.Name)
	if err != nil {
		return nil, nil, err
	}
	fv, err := q.mount(vm.Volume)
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
// file on the volume (QMP migrate to a loopback socket the agent copies
// into the Kayo FS file), then ends the source QEMU: quick migration's
// first half.
func (q *QEMUAgent) saveState(ctx context.Context, cluster string, v *qemuVMRun, r qemuRequest, res *qemuResult, report func(hypervisor.Progress)) error {
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
	if _, err := v.m.QMP.Execute(ctx, "stop", nil); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer func() { _ = ln.Close() }()
	copied := make(chan error, 1)
	var n int64
	go func() {
		c, err := ln.Accept()
		if err != nil {
			copied <- err
			return
		}
		defer func() { _ = c.Close() }()
		br := bufio.NewReaderSize(c, 1<<20)
		buf := make([]byte, 1<<20)
		off := int64(stateHeaderSize)
		for {
			k, rerr := io.ReadFull(br, buf)
			if k > 0 {
				if _, err := f.WriteAt(buf[:k], off); err != nil {
					copied <- err
					return
				}
				off += int64(k)
			}
			if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
				n = off - stateHeaderSize
				copied <- nil
				return
			}
			if rerr != nil {
				copied <- rerr
				return
			}
		}
	}()
	if err := v.m.StartMigration(ctx, "tcp:"+ln.Addr().String()); err != nil {
		return err
	}
	report(hypervisor.Progress{Phase: "save", Percent: 0})
	if _, err := v.m.QMP.WaitMigration(ctx, 10*time.Millisecond, nil); err != nil {
		return err
	}
	// The source is fenced now: its QEMU ends before anyone restores.
	if v.export != nil {
		v.export.Fence()
	}
	q.stopMachine(ctx, v)
	if err := <-copied; err != nil {
		return fmt.Errorf("writing the saved state: %w", err)
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
	res.Bytes = n
	report(hypervisor.Progress{Phase: "save", Percent: 100})
	v.rec.State, v.rec.Reason = hypervisor.Saved, "state saved to the volume"
	return q.save(ctx, cluster, v)
}

// restore starts QEMU waiting for a migration stream and feeds it the
// saved state from the volume, then runs the guest.
func (q *QEMUAgent) restore(ctx context.Context, cluster string, v *qemuVMRun, r qemuRequest, report func(hypervisor.Progress)) error {
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
	if err := json.Unmarshal(trimNUL(blk), &hdr); err != nil || hdr.Magic != qemuStateMagic || hdr.Name != v.name {
		return fmt.Errorf("the saved-state file of VM %q holds no QEMU state of it: %w", v.name, hypervisor.ErrState)
	}
	q.stopMachine(ctx, v)
	port, err := qemu.FreePort()
	if err != nil {
		return err
	}
	if err := q.launch(ctx, cluster, v, r, fmt.Sprintf("tcp:127.0.0.1:%d", port)); err != nil {
		return err
	}
	report(hypervisor.Progress{Phase: "restore", Percent: 0})
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return err
	}
	_, err = io.Copy(c, io.NewSectionReader(f, stateHeaderSize, hdr.Bytes))
	_ = c.Close()
	if err != nil {
		return fmt.Errorf("streaming the saved state: %w", err)
	}
	v.rec.State, v.rec.Token, v.rec.VM = qemuIncoming, r.Token, r.VM
	for {
		q.refreshState(ctx, v)
		if v.rec.State != qemuIncoming {
			break
		}
		if done, _ := v.m.Exited(); done {
			return fmt.Errorf("VM %q: QEMU exited while loading the saved state", v.name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
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
