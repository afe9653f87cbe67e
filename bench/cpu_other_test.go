//go:build !unix

package bench

import "time"

// childCPU is not measured here.
func childCPU() time.Duration { return 0 }
