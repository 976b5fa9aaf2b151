package intaketest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
)

// TestPut: a Put before the stream runs is tried again until it is
// stored; an invalid event and a cancelled context end it at once.
func TestPut(t *testing.T) {
	s := intake.New()
	got := make(chan string, 1)
	s.Handle(func(_ context.Context, e event.Event) error {
		got <- e.ID
		return nil
	})
	put := make(chan error, 1)
	go func() { put <- intaketest.Put(context.Background(), s, event.Event{Source: "s", ID: "1"}) }()
	time.Sleep(20 * time.Millisecond) // Put meets a stream not running yet
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	if id := <-got; id != "1" {
		t.Fatalf("handled %q", id)
	}
	if err := intaketest.Put(context.Background(), s, event.Event{Source: "s"}); !errors.Is(err, event.ErrInvalid) {
		t.Errorf("no id: %v, want ErrInvalid", err)
	}
	cancel()
	<-done
	stopped, stop := context.WithCancel(context.Background())
	stop()
	if err := intaketest.Put(stopped, intake.New(), event.Event{Source: "s", ID: "2"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
}
