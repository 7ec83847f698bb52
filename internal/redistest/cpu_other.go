//go:build !linux

package redistest

import "time"

// ThreadCPU returns 0: per-thread CPU time is read on Linux only.
func ThreadCPU() time.Duration { return 0 }
