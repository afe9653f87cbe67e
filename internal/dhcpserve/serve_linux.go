//go:build linux

package dhcpserve

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

const ethPIP = 0x0800

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// Serve answers DHCP on interface ifname (a switch's bridge) until ctx
// ends. id gives the server identifier to use now (the bridge's address
// on the switch's subnet, which may move onto the bridge after it
// starts).
func Serve(ctx context.Context, ifname string, s *Server, id func() netip.Addr) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(ethPIP)))
	if err != nil {
		return fmt.Errorf("DHCP on %s: %w", ifname, err)
	}
	defer func() { _ = syscall.Close(fd) }()
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPIP), Ifindex: ifi.Index}); err != nil {
		return fmt.Errorf("DHCP on %s: %w", ifname, err)
	}
	// Wake every 200 ms to notice ctx's end.
	tv := syscall.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return fmt.Errorf("DHCP on %s: %w", ifname, err)
	}
	buf := make([]byte, 2048)
	for ctx.Err() == nil {
		n, from, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			return fmt.Errorf("DHCP on %s: %w", ifname, err)
		}
		if ll, ok := from.(*syscall.SockaddrLinklayer); ok && ll.Pkttype == syscall.PACKET_OUTGOING {
			continue // our own replies
		}
		payload, _, ok := DecodeFrame(buf[:n], serverPort)
		if !ok {
			continue
		}
		req, err := Parse(payload)
		if err != nil {
			continue
		}
		sid := id()
		rep, ok := s.Reply(req, sid)
		if !ok {
			continue
		}
		// To the client's MAC; to its address when it has one and did
		// not ask for a broadcast, else to everyone on the segment
		// (RFC 2131 4.1).
		dstMAC, dst := req.CHAddr, netip.AddrFrom4([4]byte{255, 255, 255, 255})
		if req.Flags&flagBroadcast != 0 {
			dstMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		} else if req.CIAddr.IsValid() && !req.CIAddr.IsUnspecified() {
			dst = req.CIAddr
		}
		f := EncodeFrame(ifi.HardwareAddr, dstMAC, sid, dst, serverPort, clientPort, rep.Marshal())
		to := &syscall.SockaddrLinklayer{Protocol: htons(ethPIP), Ifindex: ifi.Index, Halen: 6}
		copy(to.Addr[:], dstMAC)
		if err := syscall.Sendto(fd, f, 0, to); err != nil && s.Logf != nil {
			s.Logf("DHCP on %s: sending to %s: %v", ifname, req.CHAddr, err) // the client asks again
		}
	}
	return nil
}
