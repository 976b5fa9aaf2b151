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

// TxBatchPoison checks a backend's batched transactional handler
// (HandleTxBatch): 500 events, one of them "poison", into a subscription
// of 32 workers whose handler, built by handler around check, writes one
// row per event in the batch's transaction after check(events) returns
// nil; check fails any batch that holds the poison. Every other event
// must have exactly one row and never be dead-lettered; the poison none,
// dead alone after its 3 attempts; and the events must have been handled
// in fewer transactions than events.
func TxBatchPoison(t *testing.T, q dedupe.Queue, handler func(check func(events []event.Event) error) intake.HandlerFunc, rows func() map[string]int) {
	t.Helper()
	const n = 500
	s := intake.New(intake.WithQueue(q), intake.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	var calls, dead atomic.Int64
	var deadID atomic.Value
	check := func(events []event.Event) error {
		calls.Add(1)
		for _, e := range events {
			if e.ID == "poison" {
				return errors.New("poison: cannot decode")
			}
		}
		return nil
	}
	s.Handle(handler(check), intake.WithWorkers(32), intake.WithMaxAttempts(3), intake.WithRetryBackoff(time.Millisecond, 5*time.Millisecond),
		intake.WithDeadLetter(func(_ context.Context, dl intake.DeadLetter) {
			dead.Add(1)
			deadID.Store(dl.Event.ID)
		}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-s.Started()
	for i := range n {
		id := fmt.Sprintf("evt_%03d", i)
		if i == n/2 {
			id = "poison"
		}
		if err := Put(context.Background(), s, event.Event{Source: "shop", ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for dead.Load() < 1 || len(rows()) < n-1 {
		if dead.Load() > 1 {
			t.Fatalf("%d events dead-lettered (the last %v): the poison's neighbours spent their attempts", dead.Load(), deadID.Load())
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s: %d dead, %d rows of %d", dead.Load(), len(rows()), n-1)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a write or a burial that should not be, were there one
	got := rows()
	for i := range n {
		id := fmt.Sprintf("evt_%03d", i)
		if i == n/2 {
			id = "poison"
		}
		want := 1
		if id == "poison" {
			want = 0
		}
		if got[id] != want {
			t.Errorf("%s: %d rows, want %d", id, got[id], want)
		}
	}
	if dead.Load() != 1 || deadID.Load() != "poison" {
		t.Errorf("%d dead letters (the last %v), want the poison alone", dead.Load(), deadID.Load())
	}
	if c := calls.Load(); c >= n {
		t.Errorf("%d handler calls for %d events: no batch formed", c, n)
	} else {
		t.Logf("%d events in %d handler calls (batches, and the poison's splits and retries)", n, c)
	}
}
