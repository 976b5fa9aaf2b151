package intake_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/leak"
)

// A handler's error that carries a server's delay (a 429's Retry-After)
// is retried no sooner than that delay, even when it is longer than the
// subscription's backoff maximum: issue #34, item 3 (GitHub's secondary
// limits ask for 60 s; the default backoff stops at 30 s).
func TestRetryAfterLongerThanTheBackoffIsHonoured(t *testing.T) {
	leak.Check(t)
	const asked = 400 * time.Millisecond
	var mu sync.Mutex
	var at []time.Time
	done := make(chan struct{})
	s := intake.New(intake.WithLogger(quiet))
	s.Handle(func(ctx context.Context, e event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		if len(at) == 1 {
			return event.RetryAfter(asked, errors.New("429 slow down"))
		}
		close(done)
		return nil
	}, intake.WithSources("api"), intake.WithRetryBackoff(time.Millisecond, 20*time.Millisecond))
	run(t, s)
	if err := s.Put(context.Background(), event.Event{Source: "api", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("not retried")
	}
	mu.Lock()
	defer mu.Unlock()
	if gap := at[1].Sub(at[0]); gap < asked {
		t.Errorf("retried %v after the handler asked for %v (the backoff's cap is 20 ms)", gap, asked)
	}
}

// WithMaxRetryAfter caps the server's delay.
func TestMaxRetryAfterCapsTheServersDelay(t *testing.T) {
	leak.Check(t)
	var mu sync.Mutex
	var at []time.Time
	done := make(chan struct{})
	s := intake.New(intake.WithLogger(quiet))
	s.Handle(func(ctx context.Context, e event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		if len(at) == 1 {
			return event.RetryAfter(time.Hour, errors.New("429 slow down"))
		}
		close(done)
		return nil
	}, intake.WithSources("api"), intake.WithRetryBackoff(time.Millisecond, 20*time.Millisecond), intake.WithMaxRetryAfter(50*time.Millisecond))
	run(t, s)
	if err := s.Put(context.Background(), event.Event{Source: "api", ID: "1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("an hour's Retry-After was not capped by WithMaxRetryAfter(50ms)")
	}
	mu.Lock()
	defer mu.Unlock()
	if gap := at[1].Sub(at[0]); gap < 50*time.Millisecond {
		t.Errorf("retried %v after, want at least the 50 ms cap", gap)
	}
}
