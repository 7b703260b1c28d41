//go:build race

package allowance_test

// raceEnabled is true in a -race build.
const raceEnabled = true
