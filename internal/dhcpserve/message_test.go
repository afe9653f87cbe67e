package dhcpserve

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

var (
	guestMAC = net.HardwareAddr{0x00, 0x15, 0x5d, 0x01, 0x02, 0x03}
	otherMAC = net.HardwareAddr{0x00, 0x15, 0x5d, 0x09, 0x09, 0x09}
	serverID = netip.MustParseAddr("10.77.0.1")
)

func testServer(acks *[]string) *Server {
	return &Server{
		Lookup: func(mac net.HardwareAddr) (netip.Prefix, bool) {
			if bytes.Equal(mac, guestMAC) {
				return netip.MustParsePrefix("10.77.0.2/24"), true
			}
			return netip.Prefix{}, false
		},
		Lease: time.Hour,
		OnAck: func(mac net.HardwareAddr, p netip.Prefix) { *acks = append(*acks, mac.String()+"="+p.String()) },
	}
}

func TestMessageRoundTrip(t *testing.T) {
	m := Message{Op: 2, XID: 0xdeadbeef, Flags: flagBroadcast, YIAddr: netip.MustParseAddr("10.77.0.2"), CHAddr: guestMAC,
		Type: Ack, ServerID: serverID, Mask: netip.MustParseAddr("255.255.255.0"), Router: serverID, Lease: time.Hour}
	b := m.Marshal()
	if len(b) < 300 {
		t.Fatalf("a message of %d bytes; BOOTP's minimum is 300", len(b))
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.XID != m.XID || got.Flags != m.Flags || got.YIAddr != m.YIAddr || !bytes.Equal(got.CHAddr, guestMAC) || got.Type != Ack ||
		got.ServerID != serverID || got.Mask != m.Mask || got.Router != serverID || got.Lease != time.Hour || got.CIAddr.IsValid() && !got.CIAddr.IsUnspecified() {
		t.Fatalf("parsed %+v, marshalled %+v", got, m)
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	good := Message{Op: 1, XID: 1, CHAddr: guestMAC, Type: Discover}.Marshal()
	noType := Message{Op: 1, XID: 1, CHAddr: guestMAC}.Marshal()
	noType[bootpLen+4] = optEnd // drop option 53
	for name, b := range map[string][]byte{
		"short":        good[:100],
		"no cookie":    append(append([]byte{}, good[:bootpLen]...), 1, 2, 3, 4, optEnd),
		"no type":      noType,
		"option cut":   append(append([]byte{}, good[:bootpLen+4]...), optRequestedIP, 4, 10),
		"not ethernet": append([]byte{1, 6, 6}, good[3:]...),
	} {
		if _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// The DORA exchange, decided without sockets: only the reserved MAC is
// answered, always with its reserved address; a request for another
// address is refused (NAK), one to another server ignored.
func TestServerReplies(t *testing.T) {
	var acks []string
	s := testServer(&acks)
	offer, ok := s.Reply(Message{Op: 1, XID: 7, CHAddr: guestMAC, Type: Discover}, serverID)
	if !ok || offer.Type != Offer || offer.YIAddr != netip.MustParseAddr("10.77.0.2") || offer.XID != 7 ||
		offer.Mask != netip.MustParseAddr("255.255.255.0") || offer.ServerID != serverID || offer.Lease != time.Hour {
		t.Fatalf("offer: %v %+v", ok, offer)
	}
	if len(acks) != 0 {
		t.Fatalf("an offer acknowledged %v", acks)
	}
	if _, ok := s.Reply(Message{Op: 1, XID: 8, CHAddr: otherMAC, Type: Discover}, serverID); ok {
		t.Fatal("answered a MAC it does not serve")
	}
	req := Message{Op: 1, XID: 7, CHAddr: guestMAC, Type: Request, RequestedIP: offer.YIAddr, ServerID: serverID}
	ack, ok := s.Reply(req, serverID)
	if !ok || ack.Type != Ack || ack.YIAddr != offer.YIAddr || fmt.Sprint(acks) != "[00:15:5d:01:02:03=10.77.0.2/24]" {
		t.Fatalf("ack: %v %+v, acks %v", ok, ack, acks)
	}
	other := req
	other.ServerID = netip.MustParseAddr("10.77.0.9")
	if _, ok := s.Reply(other, serverID); ok {
		t.Fatal("answered a request to another server")
	}
	wrong := req
	wrong.RequestedIP = netip.MustParseAddr("10.77.0.3")
	if nak, ok := s.Reply(wrong, serverID); !ok || nak.Type != Nak || nak.YIAddr.IsValid() && !nak.YIAddr.IsUnspecified() {
		t.Fatalf("a request for another address: %v %+v, want a NAK", ok, nak)
	}
	renew := Message{Op: 1, XID: 9, CHAddr: guestMAC, Type: Request, CIAddr: offer.YIAddr}
	if ack, ok := s.Reply(renew, serverID); !ok || ack.Type != Ack || ack.YIAddr != offer.YIAddr {
		t.Fatalf("renewal: %v %+v", ok, ack)
	}
	if _, ok := s.Reply(Message{Op: 1, XID: 9, CHAddr: guestMAC, Type: Release, CIAddr: offer.YIAddr}, serverID); ok {
		t.Fatal("answered a release")
	}
}

func TestFrameRoundTrip(t *testing.T) {
	payload := Message{Op: 1, XID: 3, CHAddr: guestMAC, Type: Discover}.Marshal()
	f := EncodeFrame(guestMAC, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, netip.IPv4Unspecified(),
		netip.MustParseAddr("255.255.255.255"), clientPort, serverPort, payload)
	// The IPv4 header's checksum verifies to zero.
	if c := checksum(0, f[ethHdr:ethHdr+ipHdr]); c != 0 {
		t.Fatalf("IPv4 header checksum leaves %#x", c)
	}
	got, src, ok := DecodeFrame(f, serverPort)
	if !ok || !bytes.Equal(got, payload) || !bytes.Equal(src, guestMAC) {
		t.Fatalf("decoded %v %s (%d bytes)", ok, src, len(got))
	}
	if _, _, ok := DecodeFrame(f, clientPort); ok {
		t.Fatal("decoded a frame to another port")
	}
	frag := append([]byte{}, f...)
	frag[ethHdr+6] = 0x20 // more fragments
	if _, _, ok := DecodeFrame(frag, serverPort); ok {
		t.Fatal("decoded a fragment")
	}
}
