//go:build !race

package hub_test

// raceDetector is true when the tests run under the race detector (slower
// by an order of magnitude: time budgets grow with it).
const raceDetector = false
