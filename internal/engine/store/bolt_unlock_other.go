//go:build !unix

package store

import "os"

// unlock: bbolt's lock on other systems goes with the descriptor.
func unlock(*os.File) {}
