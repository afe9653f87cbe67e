package dhcpserve

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// The server sends and receives whole Ethernet frames on the bridge (an
// AF_PACKET socket, serve_linux.go): no address or port 67 is needed on
// the host side, so several agents in one network namespace (the
// acceptance tests') and switches without a host address work alike.

const (
	ethHdr     = 14
	ipHdr      = 20
	udpHdr     = 8
	serverPort = 67
	clientPort = 68
)

// checksum is the Internet checksum (RFC 1071) of b, continuing sum.
func checksum(sum uint32, b []byte) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// EncodeFrame wraps payload in UDP, IPv4 and Ethernet headers.
func EncodeFrame(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, srcPort, dstPort uint16, payload []byte) []byte {
	f := make([]byte, ethHdr+ipHdr+udpHdr+len(payload))
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	f[12], f[13] = 0x08, 0x00
	ip := f[ethHdr : ethHdr+ipHdr]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(ipHdr+udpHdr+len(payload)))
	ip[8], ip[9] = 64, 17 // TTL, UDP
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], checksum(0, ip))
	udp := f[ethHdr+ipHdr:]
	binary.BigEndian.PutUint16(udp[0:], srcPort)
	binary.BigEndian.PutUint16(udp[2:], dstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(udpHdr+len(payload)))
	copy(udp[udpHdr:], payload)
	// The pseudo-header: addresses, protocol, UDP length.
	var ph [12]byte
	copy(ph[0:4], s4[:])
	copy(ph[4:8], d4[:])
	ph[9] = 17
	binary.BigEndian.PutUint16(ph[10:], uint16(udpHdr+len(payload)))
	var sum uint32
	for i := 0; i < 12; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ph[i:]))
	}
	c := checksum(sum, udp)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return f
}

// DecodeFrame returns the UDP payload of an Ethernet frame carrying IPv4
// UDP to port dstPort, with the sender's MAC; false for anything else
// (fragments, options it cannot skip, other protocols).
func DecodeFrame(f []byte, dstPort uint16) (payload []byte, src net.HardwareAddr, ok bool) {
	if len(f) < ethHdr+ipHdr+udpHdr || f[12] != 0x08 || f[13] != 0x00 {
		return nil, nil, false
	}
	ip := f[ethHdr:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < ipHdr || ip[9] != 17 || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
		return nil, nil, false
	}
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total > len(ip) || total < ihl+udpHdr {
		return nil, nil, false
	}
	udp := ip[ihl:total]
	if binary.BigEndian.Uint16(udp[2:]) != dstPort {
		return nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(udp[4:]))
	if n < udpHdr || n > len(udp) {
		return nil, nil, false
	}
	return udp[udpHdr:n], append(net.HardwareAddr(nil), f[6:12]...), true
}
