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
	res := Probe(ctx, "HVCLUSTER", "A", key, lo, target, port, 3, time.Second, nil)
	if !res.Reachable || res.RTT <= 0 || res.Error != "" {
		t.Fatalf("probe of a responder: %+v", res)
	}
	// Another cluster's probe is not answered.
	if res := Probe(ctx, "OTHER", "A", key, lo, target, port, 1, 200*time.Millisecond, nil); res.Reachable || !strings.Contains(res.Error, "no answer") {
		t.Errorf("probe from another cluster: %+v, want no answer", res)
	}
	// Without the cluster's key nobody gets an answer.
	if res := Probe(ctx, "HVCLUSTER", "A", []byte("not the key"), lo, target, port, 1, 200*time.Millisecond, nil); res.Reachable || !strings.Contains(res.Error, "no answer") {
		t.Errorf("probe with the wrong key: %+v, want no answer", res)
	}
	// The wrong node answering is not a pass.
	target.Node = "C"
	if res := Probe(ctx, "HVCLUSTER", "A", key, lo, target, port, 1, time.Second, nil); res.Reachable || !strings.Contains(res.Error, "B answered, not C") {
		t.Errorf("probe answered by the wrong node: %+v", res)
	}
	r.Close()
	target.Node = "B"
	if res := Probe(ctx, "HVCLUSTER", "A", key, lo, target, port, 2, 100*time.Millisecond, nil); res.Reachable {
		t.Errorf("probe of a closed responder: %+v, want unreachable", res)
	}
}

func TestPacketRoundTripAndGarbage(t *testing.T) {
	key := []byte("k")
	p := packet{cluster: "HVCLUSTER", node: "Y-21-2k8x64", nonce: 42, kind: kindAsk, t1: 1, t2: -2, t3: 1 << 62}
	q, ok := parse(p.marshal(key), key)
	if !ok || q != p {
		t.Fatalf("round trip: %+v %v", q, ok)
	}
	tampered := p.marshal(key)
	tampered[len(magic)+nameLen] ^= 1 // the sender's name
	for _, b := range [][]byte{nil, []byte("KAYOPRB2"), []byte("KAYOPRB1" + strings.Repeat("x", packetLen-8)), append(p.marshal(key), 0), []byte(strings.Repeat("x", packetLen)), tampered} {
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

func TestClockOffsetNTP(t *testing.T) {
	ms := func(n int64) int64 { return n * int64(time.Millisecond) }
	for _, c := range []struct {
		t1, t2, t3, t4 int64
		want           time.Duration
	}{
		{0, ms(5), ms(6), ms(11), 0},                                      // same clocks, 5 ms each way
		{0, ms(3005), ms(3006), ms(11), 3 * time.Second},                  // the peer 3 s ahead
		{ms(10000), ms(7005), ms(7006), ms(10011), -3 * time.Second},      // the peer 3 s behind
		{0, ms(1000 + 9), ms(1000 + 10), ms(11), 1004 * time.Millisecond}, // 9 ms out, 1 ms back: error half the asymmetry
	} {
		if got := ClockOffset(c.t1, c.t2, c.t3, c.t4); got != c.want {
			t.Errorf("ClockOffset(%d, %d, %d, %d) = %s, want %s", c.t1, c.t2, c.t3, c.t4, got, c.want)
		}
	}
}

// A responder whose clock runs 90 s ahead: the asker measures its offset
// within the round trip, from the timestamps the exchange carries.
func TestProbeMeasuresASkewedPeersClock(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	r, err := Listen("127.0.0.1:0", "HVCLUSTER", "B", key)
	if err != nil {
		t.Fatal(err)
	}
	const skew = 90 * time.Second
	r.Now = func() time.Time { return time.Now().Add(skew) }
	go func() { _ = r.Serve() }()
	defer r.Close()
	port := int(netip.MustParseAddrPort(r.Addr().String()).Port())
	lo := netip.MustParseAddr("127.0.0.1")
	target := Target{Node: "B", Network: netip.MustParsePrefix("127.0.0.0/8"), Address: lo}
	res := Probe(context.Background(), "HVCLUSTER", "A", key, lo, target, port, 3, time.Second, nil)
	if !res.Reachable || res.PeerOffset == nil {
		t.Fatalf("probe: %+v", res)
	}
	if d := *res.PeerOffset - skew; d < -res.RTT || d > res.RTT {
		t.Errorf("peer offset %s, want %s within the round trip %s", *res.PeerOffset, skew, res.RTT)
	}
	// The asker's clock skewed instead: the peer is as far behind.
	res = Probe(context.Background(), "HVCLUSTER", "A", key, lo, target, port, 3, time.Second,
		func() time.Time { return time.Now().Add(2 * skew) })
	if d := *res.PeerOffset + skew; !res.Reachable || d < -res.RTT || d > res.RTT {
		t.Errorf("asker 180 s ahead of a peer 90 s ahead: offset %v, want -90s (%+v)", *res.PeerOffset, res)
	}
}

func TestClusterOffsetIsTheMedian(t *testing.T) {
	d := func(x time.Duration) *time.Duration { return &x }
	res := func(to string, rtt time.Duration, peer *time.Duration) Result {
		return Result{To: to, Reachable: peer != nil, RTT: rtt, PeerOffset: peer}
	}
	for _, c := range []struct {
		name    string
		results []Result
		want    time.Duration
		peers   int
	}{
		{"alone", nil, 0, 0},
		{"we run 10 s ahead of both peers", []Result{res("B", time.Millisecond, d(-10*time.Second)), res("C", time.Millisecond, d(-10*time.Second))}, 10 * time.Second, 2},
		{"one peer runs 10 s ahead: not us", []Result{res("B", time.Millisecond, d(10*time.Second)), res("C", time.Millisecond, d(0))}, 0, 2},
		{"per peer the shortest round trip counts", []Result{res("B", 9*time.Millisecond, d(-4*time.Second)), res("B", time.Millisecond, d(-2*time.Second))}, time.Second, 1},
		{"unanswered probes do not count", []Result{res("B", 0, nil), {To: "C", Reachable: true, RTT: time.Millisecond}}, 0, 0},
	} {
		got, peers := ClusterOffset(c.results)
		if got != c.want || peers != c.peers {
			t.Errorf("%s: ClusterOffset = %s from %d peers, want %s from %d", c.name, got, peers, c.want, c.peers)
		}
	}
}
