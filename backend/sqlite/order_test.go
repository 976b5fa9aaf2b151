package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/intaketest"
)

// TestOrdered: a stream on a SQLite queue keeps order per object
// (intaketest.RunOrdered); SQLite is one node's, so one replica.
func TestOrdered(t *testing.T) {
	intaketest.RunOrdered(t, 1, func(t *testing.T, n int) []dedupe.Queue {
		if n != 1 {
			t.Fatalf("a SQLite queue is one process's, not %d", n)
		}
		return []dedupe.Queue{open(t, filepath.Join(t.TempDir(), "order.db"))}
	})
}
