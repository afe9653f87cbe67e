package kayofs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"
)

// MaxNodeName is the longest node name a slot or heartbeat record holds.
const MaxNodeName = 64

// Slot states.
const (
	SlotFree    uint32 = 0
	SlotMounted uint32 = 1
	// SlotDetached: the node's mount outlives the process that made it
	// (see Volume.Detach). The slot stays the node's; no other node takes it.
	SlotDetached uint32 = 2
)

// SlotEntry is one record of the on-disk node-slot table (one block per
// slot, MaxSlots blocks reserved from format time so slots can be added
// online).
type SlotEntry struct {
	State     uint32
	Node      string
	MountGen  uint64 // bumped on every claim of the slot
	MountedAt time.Time
	Gen       uint64 // block write generation
}

func putNodeName(b []byte, node string) { copy(b[:MaxNodeName], node) }

func getNodeName(b []byte) (string, error) {
	n := b[:MaxNodeName]
	if i := bytes.IndexByte(n, 0); i >= 0 {
		if bytes.IndexFunc(n[i:], func(r rune) bool { return r != 0 }) >= 0 {
			return "", fmt.Errorf("node name padding")
		}
		n = n[:i]
	}
	if !utf8.Valid(n) {
		return "", fmt.Errorf("node name is not UTF-8")
	}
	return string(n), nil
}

func validNodeName(node string) error {
	if node == "" || len(node) > MaxNodeName || !utf8.ValidString(node) || bytes.IndexByte([]byte(node), 0) >= 0 {
		return fmt.Errorf("%w: node name %q must be 1..%d bytes of UTF-8 without NUL", ErrInvalid, node, MaxNodeName)
	}
	return nil
}

func encodeSlot(bs int, uuid [16]byte, blkno uint64, e SlotEntry) []byte {
	b := make([]byte, bs)
	le := binary.LittleEndian
	le.PutUint32(b[48:], e.State)
	putNodeName(b[56:], e.Node)
	le.PutUint64(b[120:], e.MountGen)
	le.PutUint64(b[128:], uint64(e.MountedAt.UnixNano()))
	sealBlock(b, tSlot, uuid, blkno, e.Gen)
	return b
}

// decodeSlot decodes a slot block. A fresh (never written) block is a free
// slot; a torn or corrupted one is an error.
func decodeSlot(b []byte, uuid [16]byte, blkno uint64) (SlotEntry, error) {
	st, why := checkBlock(b, tSlot, uuid, blkno)
	switch st {
	case blockFresh:
		return SlotEntry{State: SlotFree}, nil
	case blockCorrupt:
		return SlotEntry{}, fmt.Errorf("%w: slot block %d: %s", ErrCorrupt, blkno, why)
	}
	le := binary.LittleEndian
	e := SlotEntry{State: le.Uint32(b[48:]), MountGen: le.Uint64(b[120:]), Gen: blockGen(b)}
	if e.State != SlotFree && e.State != SlotMounted && e.State != SlotDetached {
		return SlotEntry{}, fmt.Errorf("%w: slot block %d: state %d", ErrCorrupt, blkno, e.State)
	}
	node, err := getNodeName(b[56:])
	if err != nil {
		return SlotEntry{}, fmt.Errorf("%w: slot block %d: %v", ErrCorrupt, blkno, err)
	}
	if (e.State != SlotFree) != (node != "") {
		return SlotEntry{}, fmt.Errorf("%w: slot block %d: state %d with node %q", ErrCorrupt, blkno, e.State, node)
	}
	e.Node = node
	e.MountedAt = time.Unix(0, int64(le.Uint64(b[128:])))
	return e, nil
}

func readSlot(dev Device, sb *Superblock, s int) (SlotEntry, error) {
	b, err := readBlock(dev, sb.bs(), sb.slotBlock(s))
	if err != nil {
		return SlotEntry{}, err
	}
	return decodeSlot(b, sb.UUID, sb.slotBlock(s))
}

func writeSlot(dev Device, sb *Superblock, s int, e SlotEntry) error {
	return writeBlock(dev, sb.bs(), sb.slotBlock(s), encodeSlot(sb.bs(), sb.UUID, sb.slotBlock(s), e))
}

// SlotInfo describes a slot for callers (engine, kayoctl).
type SlotInfo struct {
	Slot      int
	State     string // "free", "mounted", "dead" (mounted, owner gone), "corrupt"
	Node      string
	MountedAt time.Time
	Heartbeat Heartbeat
	Dirty     bool // journal holds a committed, not yet checkpointed transaction
}

// Slots reports the slot table of a volume (locks are only probed, never
// kept).
func Slots(dev Device, opts ...MountOptions) ([]SlotInfo, error) {
	sb, err := ReadSuperblock(dev)
	if err != nil {
		return nil, err
	}
	var lm *lockMgr
	o := firstOpts(opts)
	if _, ok := dev.(PathDevice); ok || o.Locks != nil {
		if lm, err = o.lockMgr(dev, ""); err != nil {
			return nil, err
		}
		defer lm.close()
	}
	out := make([]SlotInfo, 0, sb.SlotCount)
	for s := 0; s < int(sb.SlotCount); s++ {
		si := SlotInfo{Slot: s, State: "free"}
		e, err := readSlot(dev, sb, s)
		if err != nil {
			si.State = "corrupt"
		} else if e.State == SlotDetached {
			si.State, si.Node, si.MountedAt = "detached", e.Node, e.MountedAt
		} else if e.State == SlotMounted {
			si.State, si.Node, si.MountedAt = "mounted", e.Node, e.MountedAt
			if lm != nil {
				if live, _ := probeLive(lm, s); !live {
					si.State = "dead"
				}
			}
		}
		si.Heartbeat, _ = readHeartbeat(dev, sb, s)
		if p, err := readPending(dev, sb, s); err == nil && p != nil {
			si.Dirty = true
		}
		out = append(out, si)
	}
	return out, nil
}

// probeLive reports whether some mount owns slot s (it takes the slot's
// recovery for a moment when it has none).
func probeLive(lm *lockMgr, s int) (bool, error) {
	got, err := lm.cl.BeginRecovery(s)
	if err != nil {
		return false, err
	}
	if got {
		lm.cl.EndRecovery(s)
	}
	return !got, nil
}
