package main

import (
	"context"
	"testing"
	"time"

	"github.com/intakehq/intake/examples/loadtest/internal/pgtest"
	"github.com/intakehq/intake/internal/testenv"
)

// TestSharedBudgetAgainstLimiters runs both modes small (100 connections
// asking 150 requests a second of an API that allows 20): three replicas
// whose budget is shared through Postgres are answered far fewer 429s
// than three with a limiter each at the API's rate (which together ask
// three times what it allows). The figures are logged; the comparison
// is within the run, never against a time.
func TestSharedBudgetAgainstLimiters(t *testing.T) {
	testenv.SkipUnlessLong(t)
	if testing.Short() || raceEnabled {
		t.Skip("two 15 s runs of a load whose figures the race detector would distort (the budget's own tests run under it)")
	}
	dsn := pgtest.Require(t)
	cfg := Config{DSN: dsn, Connections: 100, Replicas: 3, Rate: 20, Window: 5 * time.Second, Interval: time.Second,
		Duration: 15 * time.Second, Warmup: 5 * time.Second}
	var res [2]Result
	for i, shared := range []bool{true, false} {
		c := cfg
		c.Shared = shared
		var err error
		if res[i], err = Run(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		t.Logf("%+v", res[i])
	}
	shared, limiters := res[0], res[1]
	if shared.OK == 0 || limiters.Limited == 0 {
		t.Fatalf("nothing measured: %+v, %+v", shared, limiters)
	}
	if shared.Limited*5 > limiters.Limited {
		t.Fatalf("a shared budget got %d 429s, the limiters %d: sharing did not pace the replicas", shared.Limited, limiters.Limited)
	}
}
