package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/intakehq/intake/event"

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

// TestSeqNeverDrawnAgain: a restart draws seqs after every seq drawn
// before it, the committed keys' included, so that seq order is stored
// order across restarts. (It read MAX(seq) of the rows, which a commit
// clears: an event stored after a restart came before a committed one.)
func TestSeqNeverDrawnAgain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seq.db")
	ctx := context.Background()
	b := open(t, path)
	for i := range 3 {
		if _, err := b.Enqueue(ctx, fmt.Sprint("k", i), event.Event{Source: "s", ID: fmt.Sprint(i)}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.CommitMany(ctx, []string{"k1", "k2"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = open(t, path)
	if _, err := b.Enqueue(ctx, "k3", event.Event{Source: "s", ID: "3"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	var seq int64
	if err := b.DB().QueryRow(`SELECT seq FROM intake_keys WHERE key = ?`, []byte("k3")).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	if seq <= 3 {
		t.Fatalf("the event stored after the restart drew seq %d, not after the 3 drawn before it", seq)
	}
}
