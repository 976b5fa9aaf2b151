//go:build race

package main

// raceEnabled reports whether the tests run under the race detector, which
// slows the transpiled SQLite by an order of magnitude.
const raceEnabled = true
