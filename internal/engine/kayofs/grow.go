package kayofs

import "fmt"

// Online growth. Both operations change only the superblock pair, which is
// their commit record: the primary is written and synced, then the backup;
// a crash leaves either the old layout (primary torn: the backup wins and
// the next mount rewrites the primary from it) or the new one (backup
// stale: the next mount rewrites it). Nothing else needs to change
// atomically with it:
//
//   - Grow appends allocation groups after the last one, and lengthens the
//     last group up to a full group first (its bitmap blocks were reserved
//     for a full group at format time). Group headers count used blocks, so
//     the lengthened group's header stays exact, and the new groups are
//     fresh (never written: all free) because no layout ever covered them.
//   - AddSlots raises the slot count; the slot, heartbeat and journal areas
//     were reserved for MaxSlots slots at format time, and slots past the
//     count are never written, so the new slots are fresh: free, clean.
//
// Both take the slot-table lock, so they serialize with mounts, unmounts
// and each other; every mounted node reloads the superblock whenever it
// newly takes a metadata lock (and when it meets a block or a journal
// record past its view), so no node allocates in, frees into, or replays
// over a region its layout does not cover.

// testHookGrow lets crash tests stop between the two superblock copies.
var testHookGrow func() bool

// Grow extends the volume to newSize bytes of its device (which must
// already be that large). Shrinking is refused; a newSize that adds less
// than one allocation group's metadata worth of blocks at the end is a
// no-op reported as ErrInvalid.
func (v *Volume) Grow(newSize int64) error {
	if err := v.live(); err != nil {
		return err
	}
	if rd, ok := v.dev.(interface{ refreshSize() error }); ok {
		if err := rd.refreshSize(); err != nil {
			return err
		}
	}
	if newSize > v.dev.Size() {
		return fmt.Errorf("%w: grow to %d bytes: the device has only %d", ErrInvalid, newSize, v.dev.Size())
	}
	return v.rewriteSB(func(sb *Superblock) error {
		return sb.grow(newSize)
	})
}

// AddSlots raises the number of node slots by n (the total stays ≤ MaxSlots).
func (v *Volume) AddSlots(n int) error {
	if err := v.live(); err != nil {
		return err
	}
	if n < 1 {
		return fmt.Errorf("%w: add %d slots", ErrInvalid, n)
	}
	return v.rewriteSB(func(sb *Superblock) error {
		if int(sb.SlotCount)+n > int(sb.MaxSlots) {
			return fmt.Errorf("%w: %d + %d slots exceeds the maximum of %d", ErrInvalid, sb.SlotCount, n, sb.MaxSlots)
		}
		sb.SlotCount += uint32(n)
		return nil
	})
}

// SetSlots sets the slot count to n (≥ the current count): AddSlots by a
// target, idempotent for callers that resume.
func (v *Volume) SetSlots(n int) error {
	if err := v.live(); err != nil {
		return err
	}
	return v.rewriteSB(func(sb *Superblock) error {
		if n < int(sb.SlotCount) || n > int(sb.MaxSlots) {
			return fmt.Errorf("%w: %d slots: must be %d..%d (slots cannot be removed)", ErrInvalid, n, sb.SlotCount, sb.MaxSlots)
		}
		sb.SlotCount = uint32(n)
		return nil
	})
}

// rewriteSB changes the superblock under the slot-table lock.
func (v *Volume) rewriteSB(change func(*Superblock) error) error {
	if err := v.lk.lock(keySlotTable, true); err != nil {
		return err
	}
	defer v.lk.unlock(keySlotTable, true)
	sb, err := ReadSuperblock(v.dev)
	if err != nil {
		return err
	}
	if sb.UUID != v.sbl().UUID {
		return fmt.Errorf("%w: the device now holds another volume", ErrCorrupt)
	}
	nsb := *sb
	if err := change(&nsb); err != nil {
		return err
	}
	if nsb == *sb {
		return nil
	}
	nsb.Gen++
	if err := nsb.validate(); err != nil {
		return fmt.Errorf("kayofs: internal layout error: %w", err)
	}
	b := nsb.encode()
	if err := writeBlock(v.dev, nsb.bs(), 0, b); err != nil {
		return err
	}
	if err := v.dev.Sync(); err != nil {
		return err
	}
	if testHookGrow != nil && testHookGrow() {
		return errTestCrash
	}
	if err := writeBlock(v.dev, nsb.bs(), 1, b); err != nil {
		return err
	}
	if err := v.dev.Sync(); err != nil {
		return err
	}
	return v.refreshSB()
}

// grow recomputes the layout for newSize bytes.
func (sb *Superblock) grow(newSize int64) error {
	total := uint64(newSize) / uint64(sb.BlockSize)
	if total > 1<<44 {
		return fmt.Errorf("%w: %d bytes is too large", ErrInvalid, newSize)
	}
	if total < sb.TotalBlocks {
		return fmt.Errorf("%w: cannot shrink the volume from %d to %d bytes", ErrInvalid, sb.TotalBlocks*uint64(sb.BlockSize), newSize)
	}
	// The current last group first fills up to a full group; past it, groups
	// are appended. A tail too short for a group's header and bitmaps plus
	// one data block stays unused, as at format time.
	g := *sb
	g.TotalBlocks = total
	span := g.agSpan()
	g.AGCount = uint32((total - g.agStart() + span - 1) / span)
	if g.AGCount > 1<<28 {
		return fmt.Errorf("%w: %d bytes needs too many allocation groups", ErrInvalid, newSize)
	}
	if g.agDataLen(g.AGCount-1) == 0 {
		g.TotalBlocks = g.agHeader(g.AGCount - 1)
		g.AGCount--
	}
	if g.TotalBlocks < sb.TotalBlocks {
		g.TotalBlocks, g.AGCount = sb.TotalBlocks, sb.AGCount
	}
	sb.TotalBlocks, sb.AGCount = g.TotalBlocks, g.AGCount
	return nil
}

// Size is the number of bytes the volume covers.
func (sb *Superblock) Size() int64 { return int64(sb.TotalBlocks) * int64(sb.BlockSize) }
