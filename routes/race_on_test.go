//go:build race

package routes_test

// raceEnabled is true in a -race build.
const raceEnabled = true
