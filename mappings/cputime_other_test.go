//go:build !unix

package mappings

func cpuNanos() int64 { return 0 }
