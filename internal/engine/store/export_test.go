package store

import "time"

// SetWaitNotifyEvery changes how often OnWait is called, for a test.
func SetWaitNotifyEvery(d time.Duration) (restore func()) {
	old := waitNotifyEvery
	waitNotifyEvery = d
	return func() { waitNotifyEvery = old }
}

// Opens returns how often b's process opened its file.
func Opens(b *Bolt) int64 { return b.keep.opens.Load() }
