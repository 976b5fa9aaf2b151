package intaketest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
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

// HeldEvent is event i of what [Hold] puts: "held-%03d", with a payload
// that holds a NUL and a byte that is not UTF-8, so that a test can check
// it comes back byte-exact.
func HeldEvent(i int) event.Event {
	return event.Event{ID: fmt.Sprintf("held-%03d", i), Source: "child", Type: "t", Payload: []byte(fmt.Sprintf(`{"n":%d,"b":"\u0000\xff"}`, i))}
}

// Hold is a crash test's child: it puts n events ([HeldEvent]) into a
// stream on q whose handler never finishes, says STORED on standard
// output, and waits to be killed. It returns only on an error.
func Hold(ctx context.Context, q dedupe.Queue, n int) error {
	s := intake.New(intake.WithQueue(q), intake.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	s.Handle(func(ctx context.Context, e event.Event) error {
		<-ctx.Done()
		return ctx.Err()
	}, intake.WithAckTimeout(time.Hour))
	go func() { _ = s.Run(ctx) }()
	for i := range n {
		if err := Put(ctx, s, HeldEvent(i)); err != nil {
			return fmt.Errorf("put %q: %w", HeldEvent(i).ID, err)
		}
	}
	fmt.Println("STORED")
	select {}
}
