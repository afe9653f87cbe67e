package kayofs

import (
	"encoding/binary"
	"fmt"
	"time"
)

// Heartbeat is one record of the heartbeat region (one block per slot).
// A mounted node rewrites its record every heartbeat period with a growing
// generation; another host sees a node as alive while the generation moves.
// In the embedded lab the kernel's OFD liveness locks are the authoritative
// failure detector; the heartbeat is the cross-host signal.
type Heartbeat struct {
	Active    bool
	Node      string
	Counter   uint64 // heartbeat generation
	MountGen  uint64
	Timestamp time.Time
}

func encodeHeartbeat(bs int, uuid [16]byte, blkno uint64, h Heartbeat) []byte {
	b := make([]byte, bs)
	le := binary.LittleEndian
	if h.Active {
		le.PutUint32(b[48:], 1)
	}
	putNodeName(b[56:], h.Node)
	le.PutUint64(b[120:], h.Counter)
	le.PutUint64(b[128:], uint64(h.Timestamp.UnixNano()))
	le.PutUint64(b[136:], h.MountGen)
	sealBlock(b, tHeartbeat, uuid, blkno, h.Counter)
	return b
}

func decodeHeartbeat(b []byte, uuid [16]byte, blkno uint64) (Heartbeat, error) {
	st, why := checkBlock(b, tHeartbeat, uuid, blkno)
	switch st {
	case blockFresh:
		return Heartbeat{}, nil
	case blockCorrupt:
		return Heartbeat{}, fmt.Errorf("%w: heartbeat block %d: %s", ErrCorrupt, blkno, why)
	}
	le := binary.LittleEndian
	act := le.Uint32(b[48:])
	if act > 1 {
		return Heartbeat{}, fmt.Errorf("%w: heartbeat block %d: state %d", ErrCorrupt, blkno, act)
	}
	node, err := getNodeName(b[56:])
	if err != nil {
		return Heartbeat{}, fmt.Errorf("%w: heartbeat block %d: %v", ErrCorrupt, blkno, err)
	}
	return Heartbeat{
		Active:    act == 1,
		Node:      node,
		Counter:   le.Uint64(b[120:]),
		Timestamp: time.Unix(0, int64(le.Uint64(b[128:]))),
		MountGen:  le.Uint64(b[136:]),
	}, nil
}

func readHeartbeat(dev Device, sb *Superblock, s int) (Heartbeat, error) {
	b, err := readBlock(dev, sb.bs(), sb.hbBlock(s))
	if err != nil {
		return Heartbeat{}, err
	}
	return decodeHeartbeat(b, sb.UUID, sb.hbBlock(s))
}

func writeHeartbeat(dev Device, sb *Superblock, s int, h Heartbeat) error {
	return writeBlock(dev, sb.bs(), sb.hbBlock(s), encodeHeartbeat(sb.bs(), sb.UUID, sb.hbBlock(s), h))
}

// heartbeatLoop rewrites the slot's heartbeat until stop closes.
func (v *Volume) heartbeatLoop(period time.Duration, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			v.beat()
		}
	}
}

func (v *Volume) beat() {
	v.hbMu.Lock()
	defer v.hbMu.Unlock()
	v.hb.Counter++
	v.hb.Timestamp = time.Now()
	_ = writeHeartbeat(v.dev, v.sbl(), v.slot, v.hb)
}
