package dhcpserve

import (
	"net"
	"net/netip"
	"time"
)

// DefaultLease is the lease a reply grants when Server.Lease is zero: long,
// since the address never changes while the adapter stays on its switch.
const DefaultLease = 24 * time.Hour

// Server decides the replies. It keeps no lease table: Lookup is the
// truth (the engine's reservations), so any node's server answers a MAC
// the same way, and one that restarts forgets nothing.
type Server struct {
	// Lookup is the address (with its prefix length) reserved for mac,
	// false for a MAC this server must not answer.
	Lookup func(mac net.HardwareAddr) (netip.Prefix, bool)
	// Lease is the lease time granted (DefaultLease when zero).
	Lease time.Duration
	// OnAck is told of every acknowledged address (may be nil).
	OnAck func(mac net.HardwareAddr, addr netip.Prefix)
	// Logf reports what Serve could not send (may be nil).
	Logf func(format string, args ...any)
}

// Reply is the answer to request req from a server whose identifier
// (its address on the switch) is id; false when it says nothing: a MAC
// it does not serve, a REQUEST to another server, or a type it ignores
// (DECLINE, RELEASE: the address is reserved anyway).
func (s *Server) Reply(req Message, id netip.Addr) (Message, bool) {
	if req.Op != 1 || s.Lookup == nil {
		return Message{}, false
	}
	p, ok := s.Lookup(req.CHAddr)
	if !ok || !p.Addr().Is4() {
		return Message{}, false
	}
	lease := s.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	out := Message{Op: 2, XID: req.XID, Flags: req.Flags, GIAddr: req.GIAddr, CHAddr: req.CHAddr, ServerID: id}
	switch req.Type {
	case Discover:
		out.Type, out.YIAddr, out.Mask, out.Lease = Offer, p.Addr(), maskOf(p), lease
		return out, true
	case Request:
		if req.ServerID.IsValid() && req.ServerID != id {
			return Message{}, false // the client chose another server's offer
		}
		want := req.RequestedIP
		if !want.IsValid() {
			want = req.CIAddr // renewing or rebinding (RFC 2131 4.3.2)
		}
		if want != p.Addr() {
			out.Type = Nak
			return out, true
		}
		out.Type, out.YIAddr, out.CIAddr, out.Mask, out.Lease = Ack, p.Addr(), req.CIAddr, maskOf(p), lease
		if s.OnAck != nil {
			s.OnAck(req.CHAddr, p)
		}
		return out, true
	case Inform:
		out.Type, out.CIAddr, out.Mask = Ack, req.CIAddr, maskOf(p)
		return out, true
	}
	return Message{}, false
}
