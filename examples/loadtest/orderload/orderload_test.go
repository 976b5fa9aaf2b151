package main

import (
	"context"
	"testing"
	"time"

	"github.com/intakehq/intake/examples/loadtest/internal/pgtest"
	"github.com/intakehq/intake/internal/testenv"
)

// TestOrderedSmall: a small round of each mode and a small backlog on
// Postgres. Ordered keeps each object's events one at a time and in
// order; unordered, with several events of an object at once, overlaps.
// The rates are reported, not asserted (go run the command).
func TestOrderedSmall(t *testing.T) {
	testenv.SkipUnlessLong(t)
	dsn := pgtest.Require(t)
	ctx := context.Background()
	for _, unordered := range []bool{false, true} {
		res, err := Run(ctx, Config{DSN: dsn, Events: 4000, Keys: 10, Work: time.Millisecond, Workers: 32, Unordered: unordered})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v", res)
		if !unordered && (res.Overlaps != 0 || res.Backwards != 0) {
			t.Errorf("ordered: %d overlaps, %d out of order", res.Overlaps, res.Backwards)
		}
		if unordered && res.Overlaps == 0 {
			t.Errorf("unordered never overlapped: the check could not fail")
		}
	}
	u, err := Backlog(ctx, dsn, 20000, 2000, 32, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", u)
	b, err := Backlog(ctx, dsn, 20000, 2000, 32, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", b)
	if b.HandledEvents != int64(b.Events) || b.Overlaps != 0 || b.Backwards != 0 || b.StillQueued != 0 {
		t.Errorf("backlog: %+v", b)
	}
}
