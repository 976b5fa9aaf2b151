package intake_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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

// TestOutageDownstreamUnderTheDefaultPolicy: the handler's database is
// down for "10 minutes" while events arrive; under Handle's default
// attempts, with the default backoff scaled by 1/1000 (1 ms doubling to
// 7.2 s: so 600 ms stand for 10 minutes), no event is dead-lettered and
// every one is handled once the outage ends.
func TestOutageDownstreamUnderTheDefaultPolicy(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet))
	var down atomic.Bool
	down.Store(true)
	var handled, dead atomic.Int64
	s.Handle(func(ctx context.Context, e event.Event) error {
		if down.Load() {
			return errors.New("database unreachable")
		}
		handled.Add(1)
		return nil
	}, intake.WithWorkers(8), intake.WithRetryBackoff(time.Millisecond, 7200*time.Millisecond),
		intake.WithDeadLetter(func(context.Context, intake.DeadLetter) { dead.Add(1) }))
	run(t, s)
	const n = 200
	for i := range n {
		require.NoError(t, s.Put(context.Background(), event.Event{Source: "s", ID: fmt.Sprint(i)}))
	}
	time.Sleep(600 * time.Millisecond) // the outage, scaled
	down.Store(false)
	deadline := time.Now().Add(60 * time.Second)
	for handled.Load() < n && dead.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if dead.Load() != 0 || handled.Load() != n {
		t.Fatalf("after the outage: %d of %d handled, %d dead-lettered", handled.Load(), n, dead.Load())
	}
}
