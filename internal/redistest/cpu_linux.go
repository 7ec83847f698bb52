package redistest

import (
	"syscall"
	"time"
)

// ThreadCPU returns the CPU time the calling OS thread has used, or 0 where
// that is not available. A benchmark that locks its goroutine to its thread
// (runtime.LockOSThread) can report CPU time per operation: unlike wall
// time, it does not count the time the thread waited for a CPU, so runs on
// a busy machine stay comparable.
func ThreadCPU() time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
