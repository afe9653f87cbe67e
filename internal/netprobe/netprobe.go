// Package netprobe is how node agents test the cluster networks between
// them, as the validation wizard's "Validate Network Communication" sends
// packets between every pair of nodes: each agent answers UDP probes on
// its port (3343, the cluster service's port in Windows) and sends one to
// every other node's address on every cluster network.
//
// A probe is a fixed-size datagram: magic, cluster, sender, nonce, three
// wall-clock timestamps, and an HMAC-SHA256 of them under the cluster's
// probe key (kept in the cluster database, so only agents hold it). The
// timestamps are NTP's: the asker's send time, the answerer's receive and
// send times; with the asker's receive time they give the peer's clock
// offset (ClockOffset). The answer is the same size, never
// larger than the question (no amplification), sent only to a probe whose
// MAC holds, and carries its own MAC: nobody without the key can make an
// agent answer, or fake an answer.
package netprobe

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"
)

// DefaultPort is the UDP port agents answer probes on.
const DefaultPort = 3343

const (
	magic     = "KAYOPRB2"
	nameLen   = 32
	macLen    = 16
	bodyLen   = len(magic) + 2*nameLen + 8 + 1 + 3*8 // magic, cluster, node, nonce, kind, t1..t3
	packetLen = bodyLen + macLen
	kindAsk   = 1
	kindReply = 2
)

type packet struct {
	cluster, node string
	nonce         uint64
	kind          byte
	// t1 is the asker's clock when it sent the probe (echoed in the
	// answer), t2 and t3 the answerer's when it received it and when it
	// answered; Unix nanoseconds.
	t1, t2, t3 int64
}

func pad(s string) []byte {
	b := make([]byte, nameLen)
	copy(b, s)
	return b
}

func (p packet) marshal(key []byte) []byte {
	b := make([]byte, 0, packetLen)
	b = append(b, magic...)
	b = append(b, pad(p.cluster)...)
	b = append(b, pad(p.node)...)
	b = binary.BigEndian.AppendUint64(b, p.nonce)
	b = append(b, p.kind)
	for _, t := range []int64{p.t1, p.t2, p.t3} {
		b = binary.BigEndian.AppendUint64(b, uint64(t))
	}
	return append(b, mac(key, b)...)
}

func mac(key, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write(body)
	return h.Sum(nil)[:macLen]
}

// parse returns the packet in b when its MAC under key holds.
func parse(b, key []byte) (packet, bool) {
	if len(b) != packetLen || string(b[:len(magic)]) != magic || !hmac.Equal(mac(key, b[:bodyLen]), b[bodyLen:]) {
		return packet{}, false
	}
	b = b[len(magic):bodyLen]
	name := func(x []byte) string { return strings.TrimRight(string(x), "\x00") }
	p := packet{cluster: name(b[:nameLen]), node: name(b[nameLen : 2*nameLen])}
	p.nonce = binary.BigEndian.Uint64(b[2*nameLen:])
	p.kind = b[2*nameLen+8]
	ts := b[2*nameLen+9:]
	p.t1, p.t2, p.t3 = int64(binary.BigEndian.Uint64(ts)), int64(binary.BigEndian.Uint64(ts[8:])), int64(binary.BigEndian.Uint64(ts[16:]))
	return p, p.kind == kindAsk || p.kind == kindReply
}

// Responder answers probes of one cluster for one node.
type Responder struct {
	conn          *net.UDPConn
	cluster, node string
	key           []byte
	// Now is the clock the answers' timestamps come from; nil: time.Now.
	// Set it before Serve.
	Now func() time.Time
}

// Listen opens the responder on addr (e.g. ":3343"); it answers probes
// authenticated with key.
func Listen(addr, cluster, node string, key []byte) (*Responder, error) {
	if len(cluster) > nameLen || len(node) > nameLen {
		return nil, fmt.Errorf("netprobe: cluster and node names hold at most %d bytes", nameLen)
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("netprobe: answering probes on %s: %w", addr, err)
	}
	return &Responder{conn: c, cluster: cluster, node: node, key: key}, nil
}

// Addr is where it listens.
func (r *Responder) Addr() net.Addr { return r.conn.LocalAddr() }

// Close stops it; Serve returns.
func (r *Responder) Close() error { return r.conn.Close() }

// Serve answers until Close.
func (r *Responder) Serve() error {
	now := r.Now
	if now == nil {
		now = time.Now
	}
	buf := make([]byte, 2*packetLen)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		t2 := now().UnixNano()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		p, ok := parse(buf[:n], r.key)
		if !ok || p.kind != kindAsk || p.cluster != r.cluster {
			continue
		}
		reply := packet{cluster: r.cluster, node: r.node, nonce: p.nonce, kind: kindReply, t1: p.t1, t2: t2, t3: now().UnixNano()}
		_, _ = r.conn.WriteToUDPAddrPort(reply.marshal(r.key), from)
	}
}

// Result is one probe from this node to another's address.
type Result struct {
	To        string        `json:"to"`
	Network   string        `json:"network"` // the cluster network, CIDR
	Address   string        `json:"address"` // the peer's address on it
	Reachable bool          `json:"reachable"`
	RTT       time.Duration `json:"rtt_ns"`
	Error     string        `json:"error,omitempty"`
	// PeerOffset is how far the peer's clock is ahead of this node's
	// (negative: behind), from the answered probe's timestamps
	// (ClockOffset); nil without an answer.
	PeerOffset *time.Duration `json:"peer_offset_ns,omitempty"`
}

// ClockOffset is NTP's offset of a peer's clock against ours from one
// exchange: we sent at t1 (our clock), the peer received at t2 and
// answered at t3 (its clock), we received at t4 (ours). Assuming the two
// legs take equal time, the peer is ((t2-t1)+(t3-t4))/2 ahead; the error is
// at most half the round trip spent on the wire, (t4-t1)-(t3-t2).
func ClockOffset(t1, t2, t3, t4 int64) time.Duration {
	return time.Duration(((t2 - t1) + (t3 - t4)) / 2)
}

// Target is a peer's address on one network.
type Target struct {
	Node    string
	Network netip.Prefix
	Address netip.Addr
}

// Probe sends up to tries probes to t from the address of this node on
// t's network (from; the zero Addr lets the kernel choose) and waits up to
// timeout for each answer. The answer must come from t's node and carry a
// MAC under key. now is this node's clock for the timestamps (nil:
// time.Now); the round trip is measured on the monotonic clock.
func Probe(ctx context.Context, cluster, node string, key []byte, from netip.Addr, t Target, port int, tries int, timeout time.Duration, now func() time.Time) Result {
	res := Result{To: t.Node, Network: t.Network.String(), Address: t.Address.String()}
	if now == nil {
		now = time.Now
	}
	var laddr *net.UDPAddr
	if from.IsValid() {
		laddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0))
	}
	c, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(netip.AddrPortFrom(t.Address, uint16(port))))
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer func() { _ = c.Close() }()
	buf := make([]byte, 2*packetLen)
	for i := 0; i < tries && ctx.Err() == nil; i++ {
		var nb [8]byte
		_, _ = rand.Read(nb[:])
		start := time.Now()
		ask := packet{cluster: cluster, node: node, nonce: binary.BigEndian.Uint64(nb[:]), kind: kindAsk, t1: now().UnixNano()}
		if _, err := c.Write(ask.marshal(key)); err != nil {
			res.Error = err.Error()
			continue
		}
		deadline := start.Add(timeout)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		_ = c.SetReadDeadline(deadline)
		for {
			n, err := c.Read(buf)
			t4 := now().UnixNano()
			if err != nil {
				res.Error = fmt.Sprintf("no answer within %s (%v)", timeout, err)
				break
			}
			p, ok := parse(buf[:n], key)
			if !ok || p.kind != kindReply || p.nonce != ask.nonce {
				continue
			}
			if p.node != t.Node {
				res.Error = fmt.Sprintf("%s answered, not %s", p.node, t.Node)
				return res
			}
			off := ClockOffset(ask.t1, p.t2, p.t3, t4)
			res.Reachable, res.RTT, res.Error, res.PeerOffset = true, time.Since(start), "", &off
			return res
		}
	}
	return res
}
