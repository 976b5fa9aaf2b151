package intake_test

import (
	"testing"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/intaketest"
)

// TestOrderedInMemory: one process with the in-memory store keeps order
// per object (intaketest.RunOrdered).
func TestOrderedInMemory(t *testing.T) {
	intaketest.RunOrdered(t, 1, func(t *testing.T, n int) []dedupe.Queue {
		if n != 1 {
			t.Fatalf("the in-memory store is one process's, not %d", n)
		}
		return []dedupe.Queue{nil}
	})
}
