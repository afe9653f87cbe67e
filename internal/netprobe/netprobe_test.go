package netprobe

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestProbeAnswerAndSilence(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	r, err := Listen("127.0.0.1:0", "HVCLUSTER", "B", key)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.Serve() }()
	defer r.Close()
	port := int(netip.MustParseAddrPort(r.Addr().String()).Port())
	lo := netip.MustParseAddr("127.0.0.1")
	target := Target{Node: "B", Network: netip.MustParsePrefix("127.0.0.0/8"), Address: lo}
	ctx := context.Background()
	res := Probe(ctx, "HVCLUSTER", "A", key, lo, target, port, 3, time.Second)
	if !res.Reachable || res.RTT <= 0 || res.Error != "" {
		t.Fatalf("probe of a responder: %+v", res)
	}
	// Another cluster's probe is not answered.
	if res := Probe(ctx, "OTHER", "A", key, lo, target, port, 1, 200*time.Millisecond); res.Reachable || !strings.Contains(res.Error, "no answer") {
		t.Errorf("probe from another cluster: %+v, want no answer", res)
	}
	// Without the cluster's key nobody gets an answer.
	if res := Probe(ctx, "HVCLUSTER", "A", []byte("not the key"), lo, target, port, 1, 200*time.Millisecond); res.Reachable || !strings.Contains(res.Error, "no answer") {
		t.Errorf("probe with the wrong key: %+v, want no answer", res)
	}
	// The wrong node answering is not a pass.
	target.Node = "C"
	if res := Probe(ctx, "HVCLUSTER", "A", key, lo, target, port, 1, time.Second); res.Reachable || !strings.Contains(res.Error, "B answered, not C") {
		t.Errorf("probe answered by the wrong node: %+v", res)
	}
	r.Close()
	target.Node = "B"
	if res := Probe(ctx, "HVCLUSTER", "A", key, lo, target, port, 2, 100*time.Millisecond); res.Reachable {
		t.Errorf("probe of a closed responder: %+v, want unreachable", res)
	}
}

func TestPacketRoundTripAndGarbage(t *testing.T) {
	key := []byte("k")
	p := packet{cluster: "HVCLUSTER", node: "Y-21-2k8x64", nonce: 42, kind: kindAsk}
	q, ok := parse(p.marshal(key), key)
	if !ok || q != p {
		t.Fatalf("round trip: %+v %v", q, ok)
	}
	tampered := p.marshal(key)
	tampered[len(magic)+nameLen] ^= 1 // the sender's name
	for _, b := range [][]byte{nil, []byte("KAYOPRB1"), append(p.marshal(key), 0), []byte(strings.Repeat("x", packetLen)), tampered} {
		if _, ok := parse(b, key); ok {
			t.Errorf("parse(%q) accepted garbage", b)
		}
	}
	if _, ok := parse(p.marshal(key), []byte("other")); ok {
		t.Error("a packet under another key was accepted")
	}
	if _, err := Listen("127.0.0.1:0", strings.Repeat("C", 33), "B", key); err == nil {
		t.Error("a 33-byte cluster name was accepted")
	}
}
