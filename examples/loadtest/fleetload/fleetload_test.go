package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/intakehq/intake/examples/loadtest/internal/pgtest"
	"github.com/intakehq/intake/internal/testenv"
)

func TestMain(m *testing.M) {
	childMain()
	os.Exit(m.Run())
}

// TestFleetKillSmall runs 2,000 connections on three replicas (processes)
// and SIGKILLs one half way: no connection is polled twice at once, no
// cursor moves backwards, and every item the API served is handled.
// The rates, shares and gaps are reported, not asserted (go run the
// command for the figures).
func TestFleetKillSmall(t *testing.T) {
	testenv.SkipUnlessLong(t)
	if testing.Short() {
		t.Skip("replicas as processes for 20 s")
	}
	dsn := pgtest.Require(t)
	res, err := Run(context.Background(), Config{DSN: dsn, Connections: 2000, Replicas: 3, Interval: 3 * time.Second,
		Lease: 2 * time.Second, Duration: 16 * time.Second, Kill: true, ItemRate: 0.05, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", res)
	if res.Polls == 0 || res.Served == 0 {
		t.Fatalf("nothing polled or served: %+v", res)
	}
	if res.Overlaps != 0 || res.Backwards != 0 {
		t.Errorf("%d polls of a connection overlapped, %d cursors moved backwards", res.Overlaps, res.Backwards)
	}
	if res.Lost != 0 {
		t.Errorf("%d of %d items served were never handled", res.Lost, res.Served)
	}
}
