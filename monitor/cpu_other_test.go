//go:build !unix

package monitor_test

// cpuNow is not measured on this platform.
func cpuNow() int64 { return 0 }
