//go:build linux

package hostnet

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

const ethPARP = 0x0806

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ProbeARP asks, from interface ifname (a switch's bridge), whether the
// machine with MAC mac holds address ip: an ARP probe (sender address
// 0.0.0.0, RFC 5227, so no host address is needed on the switch) sent to
// that MAC, answered only by a guest that configured ip. It waits at
// most wait.
func ProbeARP(ctx context.Context, ifname string, ip netip.Addr, mac net.HardwareAddr, wait time.Duration) (bool, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return false, err
	}
	if len(mac) != 6 || len(ifi.HardwareAddr) != 6 || !ip.Is4() {
		return false, fmt.Errorf("ARP probe: need Ethernet MACs and an IPv4 address (%s, %s, %s)", mac, ifi.HardwareAddr, ip)
	}
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, int(htons(ethPARP)))
	if err != nil {
		return false, fmt.Errorf("ARP probe: %w", err)
	}
	defer func() { _ = syscall.Close(fd) }()
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPARP), Ifindex: ifi.Index}); err != nil {
		return false, fmt.Errorf("ARP probe: %w", err)
	}
	tpa := ip.As4()
	frame := make([]byte, 0, 42)
	frame = append(frame, mac...)
	frame = append(frame, ifi.HardwareAddr...)
	frame = append(frame, 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1) // ARP, Ethernet/IPv4, request
	frame = append(frame, ifi.HardwareAddr...)
	frame = append(frame, 0, 0, 0, 0)
	frame = append(frame, 0, 0, 0, 0, 0, 0)
	frame = append(frame, tpa[:]...)
	to := &syscall.SockaddrLinklayer{Protocol: htons(ethPARP), Ifindex: ifi.Index, Halen: 6}
	copy(to.Addr[:], mac)
	if err := syscall.Sendto(fd, frame, 0, to); err != nil {
		return false, fmt.Errorf("ARP probe: %w", err)
	}
	deadline := time.Now().Add(wait)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	buf := make([]byte, 1500)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		tv := syscall.NsecToTimeval(left.Nanoseconds())
		_ = syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			return false, fmt.Errorf("ARP probe: %w", err)
		}
		p := buf[:n]
		// A reply (op 2) from mac saying it holds ip.
		if n >= 42 && p[12] == 0x08 && p[13] == 0x06 && p[20] == 0 && p[21] == 2 &&
			bytes.Equal(p[22:28], mac) && bytes.Equal(p[28:32], tpa[:]) {
			return true, nil
		}
	}
}
