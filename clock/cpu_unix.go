//go:build unix

package clock

import (
	"syscall"
	"time"
)

// ProcessCPU is the CPU time (user and system, all threads) this process
// has used so far: what benchmarks and load tests report per record or per
// request, which moves far less than wall time on a shared machine.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
