//go:build !unix

package engine

import "time"

// selfCPU is not measured here.
func selfCPU() time.Duration { return 0 }
