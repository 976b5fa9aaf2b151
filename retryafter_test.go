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
// subscription's backoff maximum (issue #34, item 3: GitHub's secondary
// limits ask for 60 s; the default backoff stops at 30 s), and no later
// than WithMaxRetryAfter allows.
func TestRetryAfterLongerThanTheBackoffIsHonoured(t *testing.T) {
	for _, tc := range []struct {
		name      string
		asked     time.Duration
		opts      []intake.SubscribeOption
		wantAtMin time.Duration
	}{
		{"past the backoff's cap", 400 * time.Millisecond, nil, 400 * time.Millisecond},
		{"capped by WithMaxRetryAfter", time.Hour, []intake.SubscribeOption{intake.WithMaxRetryAfter(50 * time.Millisecond)}, 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leak.Check(t)
			var mu sync.Mutex
			var at []time.Time
			done := make(chan struct{})
			s := intake.New(intake.WithLogger(quiet))
			opts := append([]intake.SubscribeOption{intake.WithSources("api"), intake.WithRetryBackoff(time.Millisecond, 20*time.Millisecond)}, tc.opts...)
			s.Handle(func(ctx context.Context, e event.Event) error {
				mu.Lock()
				defer mu.Unlock()
				at = append(at, time.Now())
				if len(at) == 1 {
					return event.RetryAfter(tc.asked, errors.New("429 slow down"))
				}
				close(done)
				return nil
			}, opts...)
			run(t, s)
			if err := s.Put(context.Background(), event.Event{Source: "api", ID: "1"}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("not retried within 30 s after asking for %v", tc.asked)
			}
			mu.Lock()
			defer mu.Unlock()
			if gap := at[1].Sub(at[0]); gap < tc.wantAtMin {
				t.Errorf("retried %v after the handler asked for %v (the backoff's cap is 20 ms), want at least %v", gap, tc.asked, tc.wantAtMin)
			}
		})
	}
}
