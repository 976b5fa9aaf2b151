package sqlite_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/event"
)

// An event a durable stream claimed but could not admit (its queue full)
// stays stored, given back, for any holder to adopt: a sender that was
// told "pending" by another replica meanwhile (a webhook's 409, a
// poller's duplicate) has handed it to the queue, not to a stream that
// then deleted it. Issue #34, item 16: TestCrashEffectsOnce lost events so.
func TestQueueFullKeepsTheEventForAdoption(t *testing.T) {
	path := filepath.Join(t.TempDir(), "intake.db")
	open := func() *sqlite.Backend {
		b, err := sqlite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	full := intake.New(intake.WithQueue(open()), intake.WithQueueSize(1), intake.WithLogger(quiet))
	block := make(chan struct{})
	defer close(block)
	full.Handle(func(ctx context.Context, e event.Event) error {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return ctx.Err()
	}, intake.WithSources("api"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = full.Run(ctx) }()
	<-full.Started()
	if err := full.Put(ctx, event.Event{Source: "api", ID: "first"}); err != nil {
		t.Fatal(err)
	}
	if err := full.Put(ctx, event.Event{Source: "api", ID: "second"}); !errors.Is(err, event.ErrQueueFull) {
		t.Fatalf("Put into a full queue: %v, want ErrQueueFull", err)
	}

	other := intake.New(intake.WithQueue(open()), intake.WithLogger(quiet))
	got := make(chan string, 4)
	other.Handle(func(ctx context.Context, e event.Event) error { got <- e.ID; return nil })
	go func() { _ = other.Run(ctx) }()
	for deadline := time.After(30 * time.Second); ; {
		select {
		case id := <-got:
			if id == "second" {
				return
			}
		case <-deadline:
			t.Fatal("the event refused for a full queue was never delivered: it was deleted, not given back")
		}
	}
}
