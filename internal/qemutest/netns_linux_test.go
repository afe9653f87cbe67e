//go:build linux

package qemutest

import (
	"net"
	"net/netip"
	"testing"

	"github.com/kayo-labs/terraform-provider-kayo/internal/netnsrig"
)

// A socket opened in InNetNS belongs to the host's namespace: it can bind
// the host's address, which the machine's own stack does not have, and
// the thread is back in this process's namespace afterwards.
func TestInNetNSOpensSocketsInTheHost(t *testing.T) {
	rig := netnsrig.New(t, "N")
	h := rig.AddHost("a", map[string]netip.Prefix{"N": netip.MustParsePrefix("10.81.0.2/24")})
	var ln net.Listener
	if err := InNetNS(h.NS, func() (err error) {
		ln, err = net.Listen("tcp", "10.81.0.2:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for i := 0; i < 4; i++ { // whatever thread runs this now
		if l, err := net.Listen("tcp", "10.81.0.2:0"); err == nil {
			_ = l.Close()
			t.Fatal("10.81.0.2 can be bound outside the host's namespace: InNetNS left a thread in it")
		}
	}
	// From another host of the rig, the listener answers.
	b := rig.AddHost("b", map[string]netip.Prefix{"N": netip.MustParsePrefix("10.81.0.3/24")})
	var c net.Conn
	if err := InNetNS(b.NS, func() (err error) {
		c, err = net.Dial("tcp", ln.Addr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if err := InNetNS("no-such-namespace-kayo", func() error { return nil }); err == nil {
		t.Fatal("a missing namespace: no error")
	}
}
