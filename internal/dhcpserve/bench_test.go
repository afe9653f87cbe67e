package dhcpserve

import (
	"net"
	"net/netip"
	"testing"
)

// BenchmarkAnswerRequest: one REQUEST frame decoded, decided and the ACK
// frame written, as Serve does per packet (without the socket).
func BenchmarkAnswerRequest(b *testing.B) {
	var acks []string
	s := testServer(&acks)
	s.OnAck = nil
	req := Message{Op: 1, XID: 7, CHAddr: guestMAC, Type: Request, RequestedIP: netip.MustParseAddr("10.77.0.2"), ServerID: serverID}
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	f := EncodeFrame(guestMAC, bcast, netip.IPv4Unspecified(), netip.MustParseAddr("255.255.255.255"), clientPort, serverPort, req.Marshal())
	b.ReportAllocs()
	for b.Loop() {
		p, _, ok := DecodeFrame(f, serverPort)
		if !ok {
			b.Fatal("frame")
		}
		m, err := Parse(p)
		if err != nil {
			b.Fatal(err)
		}
		rep, ok := s.Reply(m, serverID)
		if !ok || rep.Type != Ack {
			b.Fatal("no ack")
		}
		_ = EncodeFrame(guestMAC, guestMAC, serverID, netip.MustParseAddr("255.255.255.255"), serverPort, clientPort, rep.Marshal())
	}
}
