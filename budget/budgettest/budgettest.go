// Package budgettest is the conformance suite every [budget.Store]
// passes: the in-memory store, and each backend's against a real server.
package budgettest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/budget"
)

// Run runs the suite; newStore returns a store of the subtest's own.
func Run(t *testing.T, newStore func(t *testing.T) budget.Store) {
	t.Helper()
	for _, tt := range []struct {
		name string
		fn   func(t *testing.T, s budget.Store)
	}{
		{"NewKeyStartsZero", newKey},
		{"UpdatesAreNotLostUnderConcurrency", concurrent},
		{"KeysAreApart", apart},
		{"StateRoundTrips", roundTrip},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func get(t *testing.T, s budget.Store, key string) budget.State {
	t.Helper()
	var got budget.State
	if err := s.Update(ctx(t), key, func(st *budget.State) { got = *st }); err != nil {
		t.Fatal(err)
	}
	return got
}

func newKey(t *testing.T, s budget.Store) {
	if got := get(t, s, "api/new"); got != (budget.State{}) {
		t.Fatalf("a new key's state is %+v, want the zero State", got)
	}
}

// concurrent: 8 writers × 50 increments of one key: none lost.
func concurrent(t *testing.T, s budget.Store) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := s.Update(ctx(t), "api/shared", func(st *budget.State) { st.Used++ }); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := get(t, s, "api/shared"); got.Used != 400 {
		t.Fatalf("400 increments, state says %d: updates interleaved", got.Used)
	}
}

func apart(t *testing.T, s budget.Store) {
	for i := range 3 {
		k := fmt.Sprintf("api/k%d", i)
		for range i + 1 {
			if err := s.Update(ctx(t), k, func(st *budget.State) { st.Used++ }); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 3 {
		if got := get(t, s, fmt.Sprintf("api/k%d", i)); got.Used != i+1 {
			t.Fatalf("k%d: %d", i, got.Used)
		}
	}
}

func roundTrip(t *testing.T, s budget.Store) {
	at := time.Date(2026, 12, 7, 12, 0, 0, 123456000, time.UTC)
	want := budget.State{Next: at, Blocked: at.Add(time.Second), Pace: 250 * time.Millisecond, PaceUntil: at.Add(time.Minute),
		Used: 7, QuotaReset: at.Add(24 * time.Hour), Limited: 3, Remaining: 42}
	if err := s.Update(ctx(t), "api/rt", func(st *budget.State) { *st = want }); err != nil {
		t.Fatal(err)
	}
	got := get(t, s, "api/rt")
	if !got.Next.Equal(want.Next) || !got.Blocked.Equal(want.Blocked) || got.Pace != want.Pace || !got.PaceUntil.Equal(want.PaceUntil) ||
		got.Used != want.Used || !got.QuotaReset.Equal(want.QuotaReset) || got.Limited != want.Limited || got.Remaining != want.Remaining {
		t.Fatalf("stored %+v, read back %+v", want, got)
	}
}
