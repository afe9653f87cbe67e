package hypervisor

import "math"

// LiveModel is the deterministic model of a live migration's memory
// transfer (pre-copy, as Hyper-V's live migration and QEMU do):
//
//   - round 1 sends all of the guest's memory while it runs;
//   - while a round is sent the guest dirties pages at DirtyMBps per GiB
//     of its memory, but never more than its working set
//     (WorkingSetPercent of its memory);
//   - each next round sends what the previous one left dirty;
//   - once the dirty set is at most StopCopyMB, or after MaxRounds, or
//     when a round no longer shrinks it, the VM is paused and the rest is
//     sent (stop-and-copy); downtime is that transfer plus SwitchMs.
//
// Same inputs, same plan: no clock, no randomness.
type LiveModel struct {
	// BandwidthMBps is the migration network's throughput (MB/s).
	BandwidthMBps float64
	// DirtyMBps is how fast the guest dirties memory, per GiB of memory.
	DirtyMBps float64
	// WorkingSetPercent caps the dirty set (percent of memory).
	WorkingSetPercent float64
	// StopCopyMB: pause the VM once at most this much is dirty.
	StopCopyMB float64
	// MaxRounds bounds the pre-copy rounds.
	MaxRounds int
	// SwitchMs is the fixed cost of pausing, switching and resuming.
	SwitchMs float64
}

// DefaultLiveModel is a 1 GB/s migration network and a moderately busy
// guest.
var DefaultLiveModel = LiveModel{
	BandwidthMBps:     1000,
	DirtyMBps:         25,
	WorkingSetPercent: 20,
	StopCopyMB:        32,
	MaxRounds:         10,
	SwitchMs:          20,
}

// Round is one pre-copy round.
type Round struct {
	N          int     `json:"n"`
	SentMB     float64 `json:"sent_mb"`
	DirtiedMB  float64 `json:"dirtied_mb"`
	DurationMs float64 `json:"duration_ms"`
}

// LivePlan is what a live migration of one VM transfers, and how long it
// takes.
type LivePlan struct {
	Rounds []Round `json:"rounds"`
	// StopCopyMB is sent while the VM is paused.
	StopCopyMB float64 `json:"stop_copy_mb"`
	DowntimeMs int64   `json:"downtime_ms"`
	DurationMs int64   `json:"duration_ms"`
	// Converged is false when the dirty set stopped shrinking (the guest
	// dirties memory about as fast as the network sends it) and the VM
	// was paused with more than StopCopyMB dirty.
	Converged bool `json:"converged"`
}

func (m LiveModel) orDefault() LiveModel {
	d := DefaultLiveModel
	if m.BandwidthMBps > 0 {
		d.BandwidthMBps = m.BandwidthMBps
	}
	if m.DirtyMBps > 0 {
		d.DirtyMBps = m.DirtyMBps
	}
	if m.WorkingSetPercent > 0 {
		d.WorkingSetPercent = m.WorkingSetPercent
	}
	if m.StopCopyMB > 0 {
		d.StopCopyMB = m.StopCopyMB
	}
	if m.MaxRounds > 0 {
		d.MaxRounds = m.MaxRounds
	}
	if m.SwitchMs > 0 {
		d.SwitchMs = m.SwitchMs
	}
	return d
}

// Plan computes the live migration of a guest with memMB of memory.
// Zero fields of m take DefaultLiveModel's values.
func (m LiveModel) Plan(memMB int64) LivePlan {
	m = m.orDefault()
	mem := float64(max(memMB, 0))
	rate := m.DirtyMBps * mem / 1024 // MB/s
	ws := mem * m.WorkingSetPercent / 100
	var p LivePlan
	toSend := mem
	total := 0.0
	for n := 1; ; n++ {
		d := toSend / m.BandwidthMBps * 1000
		dirtied := math.Min(ws, rate*d/1000)
		p.Rounds = append(p.Rounds, Round{N: n, SentMB: round2(toSend), DirtiedMB: round2(dirtied), DurationMs: round2(d)})
		total += d
		switch {
		case dirtied <= m.StopCopyMB:
			p.Converged = true
		case n >= m.MaxRounds || dirtied >= toSend:
		default:
			toSend = dirtied
			continue
		}
		p.StopCopyMB = round2(dirtied)
		down := dirtied/m.BandwidthMBps*1000 + m.SwitchMs
		p.DowntimeMs = int64(math.Ceil(down))
		p.DurationMs = int64(math.Ceil(total + down))
		return p
	}
}

// QuickSaveMs is the modelled time to save (or restore) memMB of guest
// state to the shared volume at diskMBps.
func QuickSaveMs(memMB int64, diskMBps float64) int64 {
	if diskMBps <= 0 {
		diskMBps = 400
	}
	return int64(math.Ceil(float64(max(memMB, 0)) / diskMBps * 1000))
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }
