package nodeagent

import (
	"context"
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
	"github.com/kayo-labs/terraform-provider-kayo/internal/storageprobe"
)

// DefaultStorageProbeInterval is how often an agent probes its cluster's
// volumes: well within engine.StorageProbeMaxAge.
const DefaultStorageProbeInterval = 15 * time.Second

// storageProber probes, every interval, the LUN of each volume of its
// node's cluster as this host resolves it (storageprobe) and records the
// round (storage-probes/<cluster>/<node>) for the Storage validation.
type storageProber struct {
	e        *engine.Engine
	node     string
	interval time.Duration
	logf     func(string, ...any)
	seq      uint64
	lastErr  string
	lastBad  map[string]string // volume → the error last logged
}

// run probes until ctx ends, in its own goroutine: a lease join waits
// seconds, which must not delay the heartbeats.
func (s *storageProber) run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	s.seq = uint64(time.Now().UnixNano()) // grows across restarts too
	for {
		s.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *storageProber) round(ctx context.Context) {
	cluster, ts, err := s.e.StorageTargets(ctx, s.node, engine.LUNRoots{DataDir: s.e.DataDir()})
	if err == nil && cluster != "" {
		s.seq++
		r := engine.StorageRound{Results: make([]storageprobe.Result, 0, len(ts))}
		for _, t := range ts {
			t.Seq, t.Leases = s.seq, storageprobe.LeaseOptions(func(string, ...any) {})
			x := storageprobe.Probe(t)
			s.logResult(x)
			r.Results = append(r.Results, x)
		}
		r.At = time.Now().UTC()
		err = s.e.RecordStorageProbes(ctx, cluster, s.node, r)
	}
	if err != nil && ctx.Err() == nil && err.Error() != s.lastErr {
		s.logf("storage probes: %v", err)
		s.lastErr = err.Error()
	} else if err == nil {
		s.lastErr = ""
	}
}

// logResult logs a volume's probe when its outcome changes.
func (s *storageProber) logResult(x storageprobe.Result) {
	if s.lastBad == nil {
		s.lastBad = map[string]string{}
	}
	if x.Error == s.lastBad[x.Volume] {
		return
	}
	if x.Error == "" {
		s.logf("storage probe of volume %s: (%s): LUN %s leased, written and read", x.Letter, x.Volume, x.Path)
	} else {
		s.logf("storage probe of volume %s: (%s): %s", x.Letter, x.Volume, x.Error)
	}
	s.lastBad[x.Volume] = x.Error
}
