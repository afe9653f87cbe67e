package kayofs

import "bytes"

// slotWatch is what recoverDead last learnt about another node's slot.
type slotWatch struct {
	raw   []byte // the slot block as read before the check
	clean bool   // no owner and a clean journal, with raw current
}

// recoverDead replays the journal of every slot whose owner is gone. It runs
// each time this mount newly takes a metadata lock, before the protected
// blocks are read: a node that died holding that lock released it by dying,
// and its committed transaction must land before anyone reads past it.
//
// A slot found ownerless with a clean journal stays so until some node
// mounts it, and every Mount rewrites the slot block (new mount
// generation and time) before it can commit anything. So one read of the
// slot table tells which slots need the lock protocol again: those not
// known clean, and those whose block changed since they were found clean.
// Slots with an owner are always probed (it may have died since): one
// probe of the owner lock, or the recovery-lock protocol.
func (v *Volume) recoverDead() error {
	if err := v.refreshSB(); err != nil {
		return err
	}
	sb := v.sbl()
	bs := sb.bs()
	n := int(sb.SlotCount)
	v.watchMu.Lock()
	defer v.watchMu.Unlock()
	for len(v.watch) < n {
		v.watch = append(v.watch, slotWatch{})
	}
	// Slots not known clean: a live owner passes with one probe. The rest
	// (known clean, or without an owner) need their slot block.
	need := v.need[:0]
	for s := 0; s < n; s++ {
		if s == v.slot {
			continue
		}
		if !v.watch[s].clean && v.ownerLive(s) {
			continue
		}
		need = append(need, s)
	}
	v.need = need
	if len(need) == 0 {
		return nil
	}
	lo, hi := need[0], need[len(need)-1]
	if len(v.table) < (hi-lo+1)*bs {
		v.table = make([]byte, (hi-lo+1)*bs)
	}
	table := v.table[:(hi-lo+1)*bs]
	if _, err := v.dev.ReadAt(table, int64(sb.slotBlock(lo))*int64(bs)); err != nil {
		return err
	}
	for _, s := range need {
		raw := table[(s-lo)*bs : (s-lo+1)*bs]
		w := &v.watch[s]
		if w.clean {
			if bytes.Equal(w.raw, raw) {
				continue
			}
			w.clean = false
			if v.ownerLive(s) { // mounted since it was found clean
				continue
			}
		}
		got, err := v.lk.cl.BeginRecovery(s)
		if err == nil && got {
			var replayed bool
			replayed, err = recoverSlotJournal(v.dev, sb, s)
			v.lk.cl.EndRecovery(s)
			if err == nil {
				if e, derr := decodeSlot(raw, sb.UUID, sb.slotBlock(s)); derr == nil {
					v.lk.recoveredSlot(v.node, s, e, replayed)
				}
				w.raw, w.clean = append(w.raw[:0], raw...), true
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ownerLive reports whether slot s has a live owner other than this mount
// (a probe: LockManager.OwnerLive).
func (v *Volume) ownerLive(s int) bool { return v.lk.cl.OwnerLive(s) }
