package intaketest

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
)

// Counting runs a stream on q, quiet, whose handler (eight workers)
// counts each event, until the test ends; crash tests use it as the
// replica that must take a killed holder's events.
func Counting(t testing.TB, q dedupe.Queue) *Counter {
	t.Helper()
	var c Counter
	s := intake.New(intake.WithQueue(q), intake.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	s.Handle(c.Handle, intake.WithWorkers(8))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &c
}

// WaitFor waits until c has counted n distinct events and returns how
// long that took since from; it fails the test when limit passes first.
func (c *Counter) WaitFor(t testing.TB, n int, from time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for {
		if got := c.Len(); got >= n {
			return time.Since(from)
		} else if time.Since(from) > limit {
			t.Fatalf("%d of %d events handled after %v", got, n, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// CheckOnce fails the test for each event counted more than once.
func (c *Counter) CheckOnce(t testing.TB) {
	t.Helper()
	for id, n := range c.Counts() {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
		}
	}
}
