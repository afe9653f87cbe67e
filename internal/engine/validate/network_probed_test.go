package validate

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func probesBothWays(in *Input, skip func(from, to, network string) bool) {
	nets := map[string]string{"192.0.2.0/24": "192.0.2.", "10.10.10.0/24": "10.10.10."}
	octet := map[string]string{y21: "21", y22: "22"}
	in.Probing = map[string]bool{y21: true, y22: true}
	for _, from := range []string{y21, y22} {
		for _, to := range []string{y21, y22} {
			if from == to {
				continue
			}
			for n, pre := range nets {
				p := Probe{From: from, To: to, Network: netip.MustParsePrefix(n), Address: netip.MustParseAddr(pre + octet[to]),
					Reachable: true, RTT: 300 * time.Microsecond}
				if skip != nil && skip(from, to, n) {
					p.Reachable, p.RTT, p.Error = false, 0, "no answer within 1s"
				}
				in.Probes = append(in.Probes, p)
			}
		}
	}
}

func TestNetworkCommunicationFromProbes(t *testing.T) {
	in := seed()
	probesBothWays(&in, nil)
	x := find(t, Run(in), TestNetworkCommunication)
	if x.Result != Passed || x.Source != SourceProbed || !strings.Contains(x.Message, "4 probes answered") {
		t.Errorf("all probes answered: %+v", x)
	}
	in = seed()
	probesBothWays(&in, func(from, to, n string) bool { return from == y22 && n == "10.10.10.0/24" })
	x = find(t, Run(in), TestNetworkCommunication)
	want := `"Y-22-2k8x64" cannot reach "Y-21-2k8x64" on network 10.10.10.0/24`
	if x.Result != Failed || !strings.Contains(x.Message, want) || strings.Contains(x.Message, `"Y-21-2k8x64" cannot reach`) {
		t.Errorf("heartbeat cut one way: %+v, want failed naming only %s", x, want)
	}
	// A node whose agent does not probe: a warning naming it, never a pass.
	in = seed()
	probesBothWays(&in, nil)
	delete(in.Probing, y22)
	x = find(t, Run(in), TestNetworkCommunication)
	if x.Result != Warning || !strings.Contains(x.Message, `"Y-22-2k8x64" reports no probes`) {
		t.Errorf("one node not probing: %+v", x)
	}
	// A probing node missing a result for one network.
	in = seed()
	probesBothWays(&in, nil)
	in.Probes = in.Probes[1:]
	if x = find(t, Run(in), TestNetworkCommunication); x.Result != Warning || !strings.Contains(x.Message, "no probe result from") {
		t.Errorf("a missing result: %+v", x)
	}
}

// The report keeps each probed pair's reachability and round-trip time.
func TestNetworkCommunicationKeepsEachPair(t *testing.T) {
	in := seed()
	probesBothWays(&in, func(from, to, n string) bool { return from == y22 && n == "10.10.10.0/24" })
	x := find(t, Run(in), TestNetworkCommunication)
	if len(x.Probes) != 4 {
		t.Fatalf("probes in the report: %+v, want the 4 pairs and networks", x.Probes)
	}
	for _, p := range x.Probes {
		cut := p.From == y22 && p.Network == "10.10.10.0/24"
		if p.Reachable == cut || (!cut && p.RTT != 300*time.Microsecond) {
			t.Errorf("pair %+v: want reachable %v with its round trip", p, !cut)
		}
	}
}
