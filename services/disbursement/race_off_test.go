//go:build !race

package disbursement

// raceEnabled is true in a -race build.
const raceEnabled = false
