package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
