//go:build !unix

package clock

import "time"

// ProcessCPU is 0 where getrusage is missing: figures per CPU-second are
// then not reported.
func ProcessCPU() time.Duration { return 0 }
