//go:build !unix

package engine

// pidAlive cannot tell on this platform: holders expire by their lease.
func pidAlive(int) bool { return true }
