// Package netprobe is how node agents test the cluster networks between
// them, as the validation wizard's "Validate Network Communication" sends
// packets between every pair of nodes: each agent answers UDP probes on
// its port (3343, the cluster service's port in Windows) and sends one to
// every other node's address on every cluster network.
//
// A probe is a fixed-size datagram: magic, cluster, sender, nonce, and an
// HMAC-SHA256 of them under the cluster's probe key (kept in the cluster
// database, so only agents hold it). The answer is the same size, never
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
	magic     = "KAYOPRB1"
	nameLen   = 32
	macLen    = 16
	bodyLen   = len(magic) + 2*nameLen + 8 + 1 // magic, cluster, node, nonce, kind
	packetLen = bodyLen + macLen
	kindAsk   = 1
	kindReply = 2
)

type packet struct {
	cluster, node string
	nonce         uint64
	kind          byte
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
	return p, p.kind == kindAsk || p.kind == kindReply
}

// Responder answers probes of one cluster for one node.
type Responder struct {
	conn          *net.UDPConn
	cluster, node string
	key           []byte
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
	buf := make([]byte, 2*packetLen)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
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
		reply := packet{cluster: r.cluster, node: r.node, nonce: p.nonce, kind: kindReply}
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
// MAC under key.
func Probe(ctx context.Context, cluster, node string, key []byte, from netip.Addr, t Target, port int, tries int, timeout time.Duration) Result {
	res := Result{To: t.Node, Network: t.Network.String(), Address: t.Address.String()}
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
		ask := packet{cluster: cluster, node: node, nonce: binary.BigEndian.Uint64(nb[:]), kind: kindAsk}
		start := time.Now()
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
			res.Reachable, res.RTT, res.Error = true, time.Since(start), ""
			return res
		}
	}
	return res
}
