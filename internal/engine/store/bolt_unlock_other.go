//go:build !unix

package store

import (
	"errors"
	"os"
)

// unlock: bbolt's lock on other systems goes with the descriptor.
func unlock(*os.File) {}

// tryLock: restoring over a live database needs flock.
func tryLock(*os.File) (bool, error) {
	return false, errors.New("restore over an existing database is supported on unix systems only")
}

// lockShared: no turns between processes on other systems
// (bolt_turns.go): tryLock fails, so no process sees a waiter.
func lockShared(*os.File) {}
