package workexec

import (
	"time"

	"github.com/kayo-labs/terraform-provider-kayo/internal/engine"
)

// pollPace is an agent executor's fallback poll. Requests come with a
// poke, so the poll only finds work whose poke was lost (a caller that
// cannot reach the agent's socket: another machine, another mount
// namespace): after a poll found such work, every fast for busyFor, as
// more of it may follow; otherwise every slow. slow is
// engine.WorkAgentTimeout/10, the heartbeat's pace, which the same loop writes.
type pollPace struct {
	fast, slow time.Duration
	busyUntil  time.Time
}

// busyFor is how long an executor polls fast after a poll found work.
const busyFor = 5 * time.Second

func newPollPace(fast time.Duration) *pollPace {
	return &pollPace{fast: fast, slow: max(fast, engine.WorkAgentTimeout/10)}
}

// next is the wait before the next poll, now; unannounced: the last poll
// (not a poke) found work to start.
func (p *pollPace) next(now time.Time, unannounced bool) time.Duration {
	if unannounced {
		p.busyUntil = now.Add(busyFor)
	}
	if now.Before(p.busyUntil) {
		return p.fast
	}
	return p.slow
}
