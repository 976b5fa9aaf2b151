package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

type delivery struct{ key, sub string }

func (d delivery) Key() string          { return d.key }
func (d delivery) Subscription() string { return d.sub }

// A transaction that cannot begin (here the backend is closed: the file
// is out of reach) fails as infrastructure, so the stream retries the
// event without spending one of its attempts; the handler never runs.
func TestUnreachableIsInfrastructure(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "closed.db"))
	ran := false
	one := b.HandleTx(func(ctx context.Context, tx *sql.Tx, e event.Event) error { ran = true; return nil })
	batch := b.HandleTxBatch(4, func(ctx context.Context, tx *sql.Tx, events []event.Event) error { ran = true; return nil })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	e := event.Event{Source: "shop", ID: "1"}
	ctx := dedupe.ContextWithDelivery(context.Background(), delivery{key: e.Key(), sub: "orders"})
	for name, fn := range map[string]func(context.Context, event.Event) error{"HandleTx": one, "HandleTxBatch": batch} {
		err := fn(ctx, e)
		if err == nil {
			t.Fatalf("%s on a closed backend: no error", name)
		}
		if c := event.ClassOf(err); c != event.Infrastructure {
			t.Errorf("%s on a closed backend: %v, class %s, want infrastructure", name, err, c)
		}
	}
	if ran {
		t.Error("the handler ran without a transaction")
	}
}

// A panic in the function of HandleTx or HandleTxBatch, which runs on the
// backend's writer goroutine, is the handler's failure: the event is
// retried and then handled, and the backend keeps writing. (It ended the
// process when the functions first ran on the writer.)
func TestPanicInATransactionalHandler(t *testing.T) {
	for _, batch := range []bool{false, true} {
		b := open(t, filepath.Join(t.TempDir(), fmt.Sprint("panic-", batch, ".db")))
		s := intake.New(intake.WithQueue(b), intake.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		var calls atomic.Int32
		handled := make(chan string, 1)
		body := func(ctx context.Context, tx *sql.Tx, e event.Event) error {
			if calls.Add(1) == 1 {
				panic("handler bug")
			}
			handled <- e.ID
			return nil
		}
		fn := b.HandleTx(body)
		if batch {
			fn = b.HandleTxBatch(4, func(ctx context.Context, tx *sql.Tx, events []event.Event) error {
				for _, e := range events {
					if err := body(ctx, tx, e); err != nil {
						return err
					}
				}
				return nil
			})
		}
		s.Handle(fn, intake.WithRetryBackoff(time.Millisecond, time.Millisecond))
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		<-s.Started()
		if err := s.Put(ctx, event.Event{Source: "shop", ID: "1"}); err != nil {
			t.Fatal(err)
		}
		select {
		case id := <-handled:
			if id != "1" || calls.Load() != 2 {
				t.Errorf("batch %v: handled %s after %d calls, want 1 after 2", batch, id, calls.Load())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("batch %v: not handled after the panic", batch)
		}
		cancel()
		<-done
	}
}
