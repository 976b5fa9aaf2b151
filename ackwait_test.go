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
)

// gatedStore is a memory store whose Commit waits for the gate to open.
type gatedStore struct {
	*dedupe.Memory
	gate chan struct{}
	once sync.Once
}

func (g *gatedStore) Commit(ctx context.Context, key string, retain time.Duration) error {
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.Memory.Commit(ctx, key, retain)
}

func (g *gatedStore) open() { g.once.Do(func() { close(g.gate) }) }

// Issue #21, item 16: AckWait returns only once the key is committed in
// the store, so a handler that needs certainty knows that no restart
// delivers the event again.
func TestAckWaitReturnsAfterTheCommit(t *testing.T) {
	store := &gatedStore{Memory: dedupe.NewMemory(), gate: make(chan struct{})}
	s := intake.New(intake.WithStore(store), intake.WithLogger(quiet))
	deliveries := s.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); store.open(); <-done }()
	require.Eventually(t, func() bool { return s.Put(ctx, event.Event{Source: "api", ID: "w-1"}) == nil }, 30*time.Second, time.Millisecond)

	d := <-deliveries
	waited := make(chan error, 1)
	go func() { waited <- d.AckWait(ctx) }()
	select {
	case err := <-waited:
		t.Fatalf("AckWait returned %v before the commit", err)
	case <-time.After(50 * time.Millisecond):
	}
	store.open()
	select {
	case err := <-waited:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("AckWait did not return after the commit")
	}
	st, err := store.Memory.Claim(ctx, event.Key("api", "w-1"), time.Minute)
	require.NoError(t, err)
	assert.Equal(t, dedupe.Done, st, "committed when AckWait returned")
	assert.NoError(t, d.AckWait(ctx), "again: returns at once")
}

// AckWait on a nacked delivery says so; a stream that stops before the
// commit says the event will be delivered again; ctx bounds the wait.
func TestAckWaitErrors(t *testing.T) {
	store := &gatedStore{Memory: dedupe.NewMemory(), gate: make(chan struct{})}
	s := intake.New(intake.WithStore(store), intake.WithLogger(quiet), intake.WithDrainTimeout(100*time.Millisecond))
	deliveries := s.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for _, id := range []string{"n-1", "c-1"} {
		require.Eventually(t, func() bool { return s.Put(ctx, event.Event{Source: "api", ID: id}) == nil }, 30*time.Second, time.Millisecond)
	}
	for range 2 {
		d := <-deliveries
		if d.Event.ID == "n-1" {
			d.Nack(errors.New("later"))
			assert.ErrorIs(t, d.AckWait(ctx), intake.ErrNacked)
			continue
		}
		short, stop := context.WithTimeout(ctx, 20*time.Millisecond)
		assert.ErrorIs(t, d.AckWait(short), context.DeadlineExceeded, "the commit is held")
		stop()
		waited := make(chan error, 1)
		go func() { waited <- d.AckWait(context.Background()) }()
		cancel() // the stream stops; its commit never gets through
		select {
		case err := <-waited:
			assert.ErrorIs(t, err, intake.ErrNotCommitted)
		case <-time.After(20 * time.Second):
			t.Fatal("AckWait did not return when the stream stopped")
		}
	}
	<-done
}
