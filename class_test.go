package intake_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/leak"
)

// An infrastructure failure (the handler's database down) spends no
// attempt: an event that meets 20 of them in a row under a subscription
// of 3 attempts is handled, not dead, and the attempt its handler sees
// stays at 1. Transient failures spend attempts as before, around the
// infrastructure ones; a permanent one is dead at once. Each dead letter
// carries the class of its last failure.
func TestErrorClasses(t *testing.T) {
	leak.Check(t)
	var mu sync.Mutex
	calls := map[string][]int{} // attempts seen, per event
	var deadLetters []intake.DeadLetter
	s := intake.New(intake.WithLogger(quiet))
	down := errors.New("dial tcp 10.0.0.7:5432: connection refused")
	s.Handle(func(ctx context.Context, e event.Event) error {
		n, _ := intake.Attempt(ctx)
		mu.Lock()
		calls[e.ID] = append(calls[e.ID], n)
		k := len(calls[e.ID])
		mu.Unlock()
		switch e.ID {
		case "outage": // the database is down for 20 calls, then back
			if k <= 20 {
				return intake.Infrastructure(down)
			}
			return nil
		case "mixed": // transient, infrastructure ×5, transient, infrastructure, transient: dead at its third attempt
			if k == 2 || (k >= 3 && k <= 6) || k == 8 {
				return intake.Infrastructure(down)
			}
			return errors.New("ledger answered 500")
		case "poison":
			return intake.Permanent(errors.New("amount is not a number"))
		}
		return nil
	}, intake.WithName("ledger"), intake.WithMaxAttempts(3), intake.WithRetryBackoff(time.Millisecond, 2*time.Millisecond),
		intake.WithDeadLetter(func(ctx context.Context, d intake.DeadLetter) {
			mu.Lock()
			deadLetters = append(deadLetters, d)
			mu.Unlock()
		}))
	run(t, s)
	ctx := context.Background()
	for _, id := range []string{"outage", "mixed", "poison"} {
		require.NoError(t, s.Put(ctx, event.Event{Source: "shop", ID: id}))
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(calls["outage"]) == 21 && len(deadLetters) == 2
	}, 10*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // a delivery too many would show now
	mu.Lock()
	defer mu.Unlock()
	assert.Len(t, calls["outage"], 21, "handled at its 21st call")
	for i, n := range calls["outage"] {
		assert.Equal(t, 1, n, "call %d of the outage event is attempt %d, want 1: no attempt spent", i+1, n)
	}
	assert.Equal(t, []int{1, 2, 2, 2, 2, 2, 2, 3, 3}, calls["mixed"], "attempts spent by the transient failures only")
	assert.Equal(t, []int{1}, calls["poison"])
	byID := map[string]intake.DeadLetter{}
	for _, d := range deadLetters {
		byID[d.Event.ID] = d
	}
	assert.Equal(t, event.Transient, byID["mixed"].Class)
	assert.Equal(t, 3, byID["mixed"].Attempts)
	assert.Equal(t, event.Permanent, byID["poison"].Class)
	dead, err := s.List(ctx, dedupe.Filter{State: dedupe.Dead})
	require.NoError(t, err)
	require.Len(t, dead, 2)
	for _, r := range dead {
		assert.Equal(t, byID[r.Event.ID].Class, r.Failure.Class, "the listed dead letter %s carries its class", r.Event.ID)
	}
}
