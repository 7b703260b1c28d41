// Package routetest holds test helpers of the route engine: an in-memory
// bus that keeps the whole bus contract and passes the shared suite
// bus/bustest (but is not durable across processes), and a recording sink
// connector.
package routetest
