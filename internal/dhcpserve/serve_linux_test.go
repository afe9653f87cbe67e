//go:build linux

package dhcpserve

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/netnsrig"
)

// A real client (busybox udhcpc, as in the test guest) in a network
// namespace whose veth is on a bridge where Serve runs: it gets the
// reserved address only once its MAC is served, and the server is told
// of the acknowledgement.
func TestServeAnswersUdhcpcOverABridge(t *testing.T) {
	rig := netnsrig.New(t, "Lab")
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("busybox (busybox-static) is needed: %v", err)
		}
		t.Skipf("busybox: %v", err)
	}
	h := rig.AddHost("guest", map[string]netip.Prefix{"Lab": netip.MustParsePrefix("10.88.0.200/24")})
	if out, err := h.Command("ip", "addr", "flush", "dev", "eth0").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	out, err := h.Command("cat", "/sys/class/net/eth0/address").Output()
	if err != nil {
		t.Fatal(err)
	}
	mac, err := net.ParseMAC(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	serve := false
	var acks []string
	s := &Server{
		Lookup: func(m net.HardwareAddr) (netip.Prefix, bool) {
			mu.Lock()
			defer mu.Unlock()
			return netip.MustParsePrefix("10.88.0.7/24"), serve && m.String() == mac.String()
		},
		OnAck: func(m net.HardwareAddr, p netip.Prefix) {
			mu.Lock()
			defer mu.Unlock()
			acks = append(acks, m.String()+"="+p.String())
		},
		Logf: t.Logf,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, rig.Bridge("Lab"), s, func() netip.Addr { return netip.MustParseAddr("10.88.0.1") })
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	script := filepath.Join(t.TempDir(), "udhcpc.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n[ \"$1\" = bound ] && echo \"LEASE ip=$ip mask=$mask serverid=$serverid lease=$lease\"\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	udhcpc := func() (string, error) {
		out, err := h.Command(busybox, "udhcpc", "-i", "eth0", "-s", script, "-f", "-q", "-n", "-t", "3", "-T", "1", "-A", "1").CombinedOutput()
		return string(out), err
	}
	// An unknown MAC: no offer, no lease.
	if out, err := udhcpc(); err == nil || strings.Contains(out, "LEASE") {
		t.Fatalf("a MAC the server does not serve got a lease (%v):\n%s", err, out)
	}
	mu.Lock()
	serve = true
	mu.Unlock()
	out2, err := udhcpc()
	want := fmt.Sprintf("LEASE ip=10.88.0.7 mask=24 serverid=10.88.0.1 lease=%d", int(DefaultLease/time.Second))
	if err != nil || !strings.Contains(out2, want) {
		t.Fatalf("udhcpc (%v), want %q:\n%s", err, want, out2)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(acks) != "["+mac.String()+"=10.88.0.7/24]" {
		t.Fatalf("acknowledged %v", acks)
	}
}
