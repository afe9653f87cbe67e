package netprobe

import (
	"slices"
	"time"
)

// ClusterOffset is this node's clock offset against the cluster from one
// round of probes: per peer, the offset of the answer with the shortest
// round trip (the least uncertain); then the median over every measured
// peer and this node itself (counted as 0), the mean of the middle two
// for an even count. A median, not the leader's clock: one skewed node is
// the one named, whichever node leads. peers is how many peers answered
// with a timestamp; with none the offset is 0 and means nothing.
// (docs/ARCHITECTURE.md, "Clock offset")
func ClusterOffset(results []Result) (offset time.Duration, peers int) {
	best := map[string]Result{}
	for _, r := range results {
		if !r.Reachable || r.PeerOffset == nil {
			continue
		}
		if b, ok := best[r.To]; !ok || r.RTT < b.RTT {
			best[r.To] = r
		}
	}
	offs := []time.Duration{0}
	for _, r := range best {
		offs = append(offs, -*r.PeerOffset) // ours against the peer's
	}
	slices.Sort(offs)
	n := len(offs)
	if n%2 == 1 {
		return offs[n/2], len(best)
	}
	return (offs[n/2-1] + offs[n/2]) / 2, len(best)
}
