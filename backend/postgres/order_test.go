package postgres_test

import (
	"testing"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/intaketest"
)

// TestOrdered: streams on two replicas sharing one Postgres queue keep
// order per object between them (intaketest.RunOrdered).
func TestOrdered(t *testing.T) {
	pool := testPool(t)
	intaketest.RunOrdered(t, 2, func(t *testing.T, n int) []dedupe.Queue {
		prefix := testPrefix(t, pool)
		qs := make([]dedupe.Queue, n)
		for i := range qs {
			qs[i] = newBackend(t, pool, prefix)
		}
		return qs
	})
}
