// Package testenv says which tests a run takes: the README's test command
// answers in minutes, and the long tests (crash campaigns, clusters, load
// harnesses, the fault campaign) run when INTAKE_LONG=1, which CI sets.
package testenv

import (
	"os"
	"testing"
)

// LongVar is the environment variable that turns the long tests on.
const LongVar = "INTAKE_LONG"

// Long reports whether the long tests run: INTAKE_LONG=1.
func Long() bool { return os.Getenv(LongVar) == "1" }

// SkipUnlessLong skips a long test unless INTAKE_LONG=1, saying how to run
// it.
func SkipUnlessLong(t testing.TB) {
	t.Helper()
	if !Long() {
		t.Skip("a long test: run it with INTAKE_LONG=1 (CI does)")
	}
}
