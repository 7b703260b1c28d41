//go:build unix

package mappings

import "syscall"

// cpuNanos returns the CPU time (user+system, all threads) used by the
// process so far, so that benchmarks can report CPU per record even on a
// busy machine.
func cpuNanos() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
