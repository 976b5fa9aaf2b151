package intaketest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// TxRetries checks a backend's transactional handler (HandleTx) under
// retries and dead letters. handler wraps after in the backend's
// transaction: it writes one row (the event's id, the subscription) in
// the transaction, then returns after's error. rows counts the rows per
// id. Two subscriptions take three events: one fails twice after its
// write (rolled back, retried, then written), one always fails (written
// never, dead-lettered); Attempt tells the attempt inside the
// transaction as anywhere. Each subscription must leave exactly one row
// for each of the two events that succeeded.
func TxRetries(t *testing.T, q dedupe.Queue, handler func(after func(ctx context.Context, e event.Event) error) intake.HandlerFunc, rows func() map[string]int) {
	t.Helper()
	s := intake.New(intake.WithQueue(q), intake.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	var dead atomic.Int32
	after := func(ctx context.Context, e event.Event) error {
		n, _ := intake.Attempt(ctx)
		switch {
		case e.ID == "flaky" && n < 3:
			return fmt.Errorf("attempt %d fails after its write", n)
		case e.ID == "poison":
			return errors.New("never")
		}
		return nil
	}
	for _, name := range []string{"billing", "mail"} {
		s.Handle(handler(after), intake.WithName(name), intake.WithMaxAttempts(3), intake.WithRetryBackoff(time.Millisecond, 5*time.Millisecond),
			intake.WithDeadLetter(func(context.Context, intake.DeadLetter) { dead.Add(1) }))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for _, id := range []string{"ok", "flaky", "poison"} {
		if err := Put(context.Background(), s, event.Event{Source: "shop", ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for dead.Load() < 2 || len(rows()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("dead letters %d, rows %v after 10 s", dead.Load(), rows())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a write that should not be, were there one
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := rows(); len(got) != 2 || got["ok"] != 2 || got["flaky"] != 2 {
		t.Fatalf("rows per event %v, want ok and flaky once per subscription, poison never", got)
	}
	if r, err := s.Get(context.Background(), event.Key("shop", "poison")); err != nil || r.State != dedupe.Dead {
		t.Fatalf("poison: %+v, %v; want dead", r, err)
	}
}
