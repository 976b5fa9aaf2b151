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

// TestCounter: concurrent handlers count by ID; Counts is a copy.
func TestCounter(t *testing.T) {
	var c intaketest.Counter
	if c.Len() != 0 || len(c.Counts()) != 0 {
		t.Fatal("zero Counter not empty")
	}
	done := make(chan struct{})
	for range 4 {
		go func() {
			for i := range 100 {
				_ = c.Handle(context.Background(), event.Event{ID: string(rune('a' + i%10))})
			}
			done <- struct{}{}
		}()
	}
	for range 4 {
		<-done
	}
	counts := c.Counts()
	if c.Len() != 10 || len(counts) != 10 || counts["a"] != 40 {
		t.Fatalf("len %d, counts %v", c.Len(), counts)
	}
	counts["a"] = 0
	if c.Counts()["a"] != 40 {
		t.Error("Counts shares its map")
	}
}
