//go:build race

package nats_test

// raceEnabled reports whether the tests run under the race detector, which
// slows everything by an order of magnitude.
const raceEnabled = true
