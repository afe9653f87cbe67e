package kayofs

import "time"

// Detach ends this process's use of the mount but keeps the node's slot:
// the slot entry becomes SlotDetached (owner kept), the journal is clean
// (every transaction checkpoints before its locks go), heartbeats stop and
// the liveness lock is released. The node's next Mount reclaims the same
// slot; no other node's Mount takes it; Unmount (by a Mount of that node)
// frees it. This is how a node stays mounted across short-lived processes
// such as Terraform's plugin.
func (v *Volume) Detach() error { return v.leave(SlotDetached, v.node) }

// leave ends this process's mount, leaving the slot entry in state for
// node (SlotFree and "" to release it), with a final inactive heartbeat.
func (v *Volume) leave(state uint32, node string) error {
	if v.closed.Swap(true) {
		return ErrUnmounted
	}
	v.dropView()
	close(v.hbStop)
	<-v.hbDone
	defer v.lk.close()
	defer v.lk.cl.ReleaseSlot(v.slot)
	if err := v.lk.lock(keySlotTable, true); err != nil {
		return err
	}
	defer v.lk.unlock(keySlotTable, true)
	e, err := readSlot(v.dev, v.sbl(), v.slot)
	if err != nil {
		e = SlotEntry{} // a torn entry is rewritten whole
	}
	e.State, e.Node, e.Gen = state, node, e.Gen+1
	if err := writeSlot(v.dev, v.sbl(), v.slot, e); err != nil {
		return err
	}
	v.hbMu.Lock()
	v.hb.Active = false
	v.hb.Counter++
	v.hb.Timestamp = time.Now()
	err = writeHeartbeat(v.dev, v.sbl(), v.slot, v.hb)
	v.hbMu.Unlock()
	if err != nil {
		return err
	}
	return v.dev.Sync()
}
