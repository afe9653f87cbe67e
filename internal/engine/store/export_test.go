package store

import "time"

// SetWaitNotifyEvery changes how often OnWait is called, for a test.
func SetWaitNotifyEvery(d time.Duration) (restore func()) {
	old := waitNotifyEvery
	waitNotifyEvery = d
	return func() { waitNotifyEvery = old }
}
