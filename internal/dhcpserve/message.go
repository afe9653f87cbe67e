// Package dhcpserve is a small DHCPv4 server (RFC 2131/2132) for the
// virtual switches' bridges: it answers only the MACs it is told about,
// each with one fixed address (the engine's reservation for that VM
// adapter), so a guest's address does not depend on which node answers.
package dhcpserve

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Message types (option 53).
const (
	Discover byte = 1
	Offer    byte = 2
	Request  byte = 3
	Decline  byte = 4
	Ack      byte = 5
	Nak      byte = 6
	Release  byte = 7
	Inform   byte = 8
)

// Options this server reads or writes.
const (
	optSubnetMask  = 1
	optRouter      = 3
	optRequestedIP = 50
	optLeaseTime   = 51
	optMsgType     = 53
	optServerID    = 54
	optRenewal     = 58
	optRebinding   = 59
	optEnd         = 255
	optPad         = 0
)

// magic is the options cookie (RFC 2131 section 3).
var magic = [4]byte{99, 130, 83, 99}

// bootpLen is the fixed part of a message before the options.
const bootpLen = 236

// flagBroadcast asks the server to broadcast its reply (RFC 2131 4.1).
const flagBroadcast = 0x8000

// Message is a DHCP message: the BOOTP fields this server uses and the
// options it understands.
type Message struct {
	Op     byte // 1 request, 2 reply
	XID    uint32
	Secs   uint16
	Flags  uint16
	CIAddr netip.Addr
	YIAddr netip.Addr
	SIAddr netip.Addr
	GIAddr netip.Addr
	CHAddr net.HardwareAddr
	Type   byte
	// RequestedIP is option 50; ServerID option 54.
	RequestedIP netip.Addr
	ServerID    netip.Addr
	// Mask (option 1), Router (3), Lease (51; renewal and rebinding at
	// 1/2 and 7/8 of it, options 58 and 59) in replies.
	Mask   netip.Addr
	Router netip.Addr
	Lease  time.Duration
}

// ErrMalformed: the bytes are not a DHCP message this server can read.
var ErrMalformed = errors.New("malformed DHCP message")

func addr4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b[:4])) }

// Parse reads a DHCP message (the UDP payload).
func Parse(b []byte) (Message, error) {
	var m Message
	if len(b) < bootpLen+4 {
		return m, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	if b[1] != 1 || b[2] != 6 {
		return m, fmt.Errorf("%w: hardware type %d length %d, want Ethernet", ErrMalformed, b[1], b[2])
	}
	if [4]byte(b[bootpLen:bootpLen+4]) != magic {
		return m, fmt.Errorf("%w: no options cookie", ErrMalformed)
	}
	m.Op = b[0]
	m.XID = binary.BigEndian.Uint32(b[4:8])
	m.Secs = binary.BigEndian.Uint16(b[8:10])
	m.Flags = binary.BigEndian.Uint16(b[10:12])
	m.CIAddr, m.YIAddr, m.SIAddr, m.GIAddr = addr4(b[12:]), addr4(b[16:]), addr4(b[20:]), addr4(b[24:])
	m.CHAddr = append(net.HardwareAddr(nil), b[28:34]...)
	opts := b[bootpLen+4:]
	for len(opts) > 0 {
		code := opts[0]
		if code == optEnd {
			break
		}
		if code == optPad {
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			return m, fmt.Errorf("%w: option %d runs past the end", ErrMalformed, code)
		}
		v := opts[2 : 2+int(opts[1])]
		opts = opts[2+int(opts[1]):]
		switch {
		case code == optMsgType && len(v) == 1:
			m.Type = v[0]
		case code == optRequestedIP && len(v) == 4:
			m.RequestedIP = addr4(v)
		case code == optServerID && len(v) == 4:
			m.ServerID = addr4(v)
		case code == optSubnetMask && len(v) == 4:
			m.Mask = addr4(v)
		case code == optRouter && len(v) >= 4:
			m.Router = addr4(v)
		case code == optLeaseTime && len(v) == 4:
			m.Lease = time.Duration(binary.BigEndian.Uint32(v)) * time.Second
		}
	}
	if m.Type == 0 {
		return m, fmt.Errorf("%w: no message type", ErrMalformed)
	}
	return m, nil
}

func put4(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
	}
}

// Marshal writes m as a DHCP message (the UDP payload).
func (m Message) Marshal() []byte {
	b := make([]byte, bootpLen+4, bootpLen+64)
	b[0], b[1], b[2] = m.Op, 1, 6
	binary.BigEndian.PutUint32(b[4:], m.XID)
	binary.BigEndian.PutUint16(b[8:], m.Secs)
	binary.BigEndian.PutUint16(b[10:], m.Flags)
	put4(b[12:], m.CIAddr)
	put4(b[16:], m.YIAddr)
	put4(b[20:], m.SIAddr)
	put4(b[24:], m.GIAddr)
	copy(b[28:44], m.CHAddr)
	copy(b[bootpLen:], magic[:])
	opt4 := func(code byte, a netip.Addr) {
		if a.Is4() {
			v := a.As4()
			b = append(b, code, 4, v[0], v[1], v[2], v[3])
		}
	}
	secs := func(code byte, d time.Duration) {
		b = append(b, code, 4)
		b = binary.BigEndian.AppendUint32(b, uint32(d/time.Second))
	}
	b = append(b, optMsgType, 1, m.Type)
	opt4(optServerID, m.ServerID)
	opt4(optRequestedIP, m.RequestedIP)
	opt4(optSubnetMask, m.Mask)
	opt4(optRouter, m.Router)
	if m.Lease > 0 {
		secs(optLeaseTime, m.Lease)
		secs(optRenewal, m.Lease/2)
		secs(optRebinding, m.Lease*7/8)
	}
	b = append(b, optEnd)
	for len(b) < 300 { // BOOTP's minimum, which some clients expect
		b = append(b, optPad)
	}
	return b
}

// maskOf is prefix p's netmask as an address.
func maskOf(p netip.Prefix) netip.Addr {
	m := net.CIDRMask(p.Bits(), 32)
	return netip.AddrFrom4([4]byte(m))
}
