// Package hub wires one mzhub process: it opens the state store, owns the
// Prometheus registry and the single HTTP listener (/healthz, /readyz,
// /metrics, the partner API, the console), runs the components and shuts
// everything down within a deadline.
package hub
