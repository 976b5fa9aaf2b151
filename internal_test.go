package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/event"
)

// Acked deliveries leave their lease timers behind; the heap must stay
// bounded by the queue size, not grow with the number of events.
func TestLeaseTimersStayBounded(t *testing.T) {
	const queue = 50
	s := New(WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithQueueSize(queue))
	ch := s.Subscribe(WithAckTimeout(time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	acked := make(chan struct{})
	go func() {
		n := 0
		for d := range ch {
			d.Ack()
			if n++; n == 5000 {
				close(acked)
			}
		}
	}()
	for i := range 5000 {
		e := event.Event{Source: "p", ID: fmt.Sprint(i)}
		for err := s.Put(ctx, e); err != nil; err = s.Put(ctx, e) {
			if !errors.Is(err, event.ErrQueueFull) && !errors.Is(err, event.ErrNotRunning) {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	<-acked
	sub := s.subs[0]
	sub.mu.Lock()
	n := len(sub.timers)
	sub.mu.Unlock()
	cancel()
	<-done
	if n > 2*queue+64+1 {
		t.Fatalf("%d lease timers held after 5,000 acked events with a queue of %d", n, queue)
	}
}

// TestDefaultPolicyRidesOutADay: Handle's default attempts and backoff,
// at the low end of the jitter, spread over at least 24 hours, so that a
// day's outage of the handler's database dead-letters nothing. (It was 5
// attempts from 100 ms: about 1.5 s.)
func TestDefaultPolicyRidesOutADay(t *testing.T) {
	s := New()
	s.Handle(func(context.Context, event.Event) error { return nil })
	sub := s.subs[0]
	var least time.Duration
	for attempt := 1; attempt < sub.cfg.maxAttempts; attempt++ {
		// retryDelay is the attempt-th delay with ±20% jitter: its
		// lowest over many draws is near 0.8 of the delay.
		low := sub.retryDelay(attempt)
		for range 200 {
			low = min(low, sub.retryDelay(attempt))
		}
		least += low
	}
	if least < 24*time.Hour {
		t.Fatalf("the default policy retries for %v at least, not a day (%d attempts)", least.Round(time.Second), sub.cfg.maxAttempts)
	}
	t.Logf("%d attempts over at least %v", sub.cfg.maxAttempts, least.Round(time.Minute))
}

// A key with nothing pending costs nothing: once the events of 1,000
// order keys are handled (some failing once first), the subscription
// keeps no line for any of them.
func TestOrderLinesDeletedWhenEmpty(t *testing.T) {
	s := New(WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), WithQueueSize(10_000),
		WithOrderKey(func(e event.Event) string { return e.Type }))
	var failed sync.Map
	handled := make(chan struct{}, 5000)
	s.Handle(func(ctx context.Context, e event.Event) error {
		if _, again := failed.LoadOrStore(e.ID, true); !again && len(e.ID)%3 == 0 {
			return errors.New("once") // a retry holds its key meanwhile
		}
		handled <- struct{}{}
		return nil
	}, WithRetryBackoff(time.Millisecond, time.Millisecond), WithWorkers(8))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-s.Started()
	const n = 5000
	for i := range n {
		if err := s.Put(ctx, event.Event{Source: "shop", ID: fmt.Sprint(i), Type: fmt.Sprint("obj-", i%1000)}); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case <-handled:
		case <-time.After(10 * time.Second):
			t.Fatal("not every event was handled")
		}
	}
	sub := s.subs[0]
	deadline := time.Now().Add(5 * time.Second)
	for {
		sub.mu.Lock()
		left := len(sub.lines)
		sub.mu.Unlock()
		if left == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines left after every event was handled", left)
		}
		time.Sleep(time.Millisecond)
	}
}
