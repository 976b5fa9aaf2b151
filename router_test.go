package intake_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/leak"
)

type invoice struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

// Ten types through exact and prefix routes, typed decoding, types with
// no route, and a payload that does not decode, dead-lettered after one
// attempt.
func TestRouter(t *testing.T) {
	leak.Check(t)
	var mu sync.Mutex
	got := map[string][]string{} // route → event ids
	note := func(route string) intake.HandlerFunc {
		return func(_ context.Context, e event.Event) error {
			mu.Lock()
			got[route] = append(got[route], e.ID)
			mu.Unlock()
			return nil
		}
	}
	r := intake.NewRouter().
		On("invoice.paid", intake.JSON(func(_ context.Context, e event.Event, inv invoice) error {
			mu.Lock()
			got["invoice.paid"] = append(got["invoice.paid"], fmt.Sprintf("%s:%s:%d", e.ID, inv.ID, inv.Amount))
			mu.Unlock()
			return nil
		})).
		On("customer.created", note("customer.created")).
		OnPrefix("invoice.", note("invoice.*")).
		OnPrefix("invoice.payment_", note("invoice.payment_*")).
		OnPrefix("charge.", note("charge.*"))
	s := intake.New(intake.WithLogger(quiet))
	var dead []intake.DeadLetter
	s.Handle(r.Handle, intake.WithMaxAttempts(5), intake.WithRetryBackoff(time.Millisecond, time.Millisecond),
		intake.WithDeadLetter(func(_ context.Context, d intake.DeadLetter) {
			mu.Lock()
			dead = append(dead, d)
			mu.Unlock()
		}))
	stop := runStream(t, s)
	types := []string{"invoice.paid", "invoice.created", "invoice.payment_failed", "invoice.payment_succeeded",
		"customer.created", "customer.deleted", "charge.refunded", "charge.succeeded", "payout.paid", "invoice"}
	for i, typ := range types {
		require.NoError(t, putWhenRunning(context.Background(), s, event.Event{Source: "stripe", ID: fmt.Sprintf("e%d", i), Type: typ,
			Payload: []byte(fmt.Sprintf(`{"id":"in_%d","amount":%d}`, i, 100*i))}))
	}
	require.NoError(t, putWhenRunning(context.Background(), s, event.Event{Source: "stripe", ID: "bad", Type: "invoice.paid", Payload: []byte(`{"amount":"lots"}`)}))
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(dead) == 4
	}, 5*time.Second, time.Millisecond)
	stop()
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"e0:in_0:0"}, got["invoice.paid"])
	assert.ElementsMatch(t, []string{"e1"}, got["invoice.*"])
	assert.ElementsMatch(t, []string{"e2", "e3"}, got["invoice.payment_*"], "the longest prefix wins")
	assert.Equal(t, []string{"e4"}, got["customer.created"])
	assert.ElementsMatch(t, []string{"e6", "e7"}, got["charge.*"])
	assert.Equal(t, int64(3), r.Unrouted(), "customer.deleted, payout.paid, invoice")
	byID := map[string]intake.DeadLetter{}
	for _, d := range dead {
		byID[d.Event.ID] = d
	}
	for _, id := range []string{"e5", "e8", "e9"} {
		assert.ErrorIs(t, byID[id].Err, intake.ErrNoRoute, id)
		assert.Equal(t, 1, byID[id].Attempts, id)
	}
	assert.Equal(t, 1, byID["bad"].Attempts, "a payload that does not decode was retried")
	assert.Contains(t, byID["bad"].Err.Error(), "decode invoice.paid event bad")
}

// Otherwise(AckUnrouted) acks what has no route, counted.
func TestRouterAckUnrouted(t *testing.T) {
	r := intake.NewRouter().On("a", func(context.Context, event.Event) error { return errors.New("not this one") }).Otherwise(intake.AckUnrouted)
	require.NoError(t, r.Handle(context.Background(), event.Event{Type: "b"}))
	assert.Equal(t, int64(1), r.Unrouted())
	assert.Error(t, r.Handle(context.Background(), event.Event{Type: "a"}))
}

func TestRouterRefusesAmbiguousRoutes(t *testing.T) {
	fn := func(context.Context, event.Event) error { return nil }
	for name, f := range map[string]func(){
		"type twice":   func() { intake.NewRouter().On("a", fn).On("a", fn) },
		"prefix twice": func() { intake.NewRouter().OnPrefix("a.", fn).OnPrefix("a.", fn) },
		"empty type":   func() { intake.NewRouter().On("", fn) },
		"empty prefix": func() { intake.NewRouter().OnPrefix("", fn) },
		"nil function": func() { intake.NewRouter().On("a", nil) },
	} {
		assert.Panics(t, f, name)
	}
}
