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
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/leak"
)

// runStream runs s until the returned stop is called.
func runStream(t *testing.T, s *intake.Stream) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	return func() {
		cancel()
		require.NoError(t, <-errc)
	}
}

// An adopted event that some subscriptions already acked in a committed
// transaction (Stored.Done) goes only to the others; one every
// subscription acked is committed without a delivery.
func TestAdoptionSkipsSubscriptionsDone(t *testing.T) {
	leak.Check(t)
	q := newFakeQueue()
	past := time.Now().Add(-time.Minute)
	q.rows["half"] = &fakeRow{e: event.Event{Source: "s", ID: "half"}, state: dedupe.Pending, expires: past, holder: "gone", seq: 1, queued: true, done: []string{"a"}}
	q.rows["whole"] = &fakeRow{e: event.Event{Source: "s", ID: "whole"}, state: dedupe.Pending, expires: past, holder: "gone", seq: 2, queued: true, done: []string{"a", "b"}}
	s := intake.New(intake.WithLogger(quiet), intake.WithQueue(q), intake.WithClaimLease(time.Second))
	var mu sync.Mutex
	got := map[string][]string{}
	for _, name := range []string{"a", "b"} {
		s.Handle(func(ctx context.Context, e event.Event) error {
			mu.Lock()
			got[name] = append(got[name], e.ID)
			mu.Unlock()
			return nil
		}, intake.WithName(name))
	}
	stop := runStream(t, s)
	committed := func(key string) bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.rows[key].state == dedupe.Done
	}
	require.Eventually(t, func() bool { return committed("half") && committed("whole") }, 5*time.Second, time.Millisecond)
	stop()
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, got["a"], "a acked both in a transaction before: delivered again")
	assert.Equal(t, []string{"half"}, got["b"])
}

// A handler whose transactional ack found the event taken over by
// another holder (an error wrapping dedupe.ErrNotHeld) makes the stream
// let go of it: no retry, no commit, no burial, and its slot freed.
func TestNotHeldLetsGo(t *testing.T) {
	leak.Check(t)
	q := newFakeQueue()
	var dead []intake.DeadLetter
	var mu sync.Mutex
	s := intake.New(intake.WithLogger(quiet), intake.WithQueue(q), intake.WithQueueSize(1), intake.WithClaimLease(time.Second))
	calls := map[string]int{}
	s.Handle(func(ctx context.Context, e event.Event) error {
		mu.Lock()
		calls[e.ID]++
		mu.Unlock()
		if e.ID == "taken" {
			return fmt.Errorf("ack: %w", dedupe.ErrNotHeld)
		}
		return nil
	}, intake.WithRetryBackoff(time.Millisecond, time.Millisecond), intake.WithDeadLetter(func(_ context.Context, d intake.DeadLetter) {
		mu.Lock()
		dead = append(dead, d)
		mu.Unlock()
	}))
	stop := runStream(t, s)
	ctx := context.Background()
	require.NoError(t, putWhenRunning(ctx, s, event.Event{Source: "s", ID: "taken"}))
	// The queue holds one event: the next is accepted once the first
	// one's slot is free.
	require.Eventually(t, func() bool { return s.Health().QueueDepth == 0 }, 5*time.Second, time.Millisecond)
	require.NoError(t, s.Put(ctx, event.Event{Source: "s", ID: "next"}))
	require.Eventually(t, func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.rows[event.Event{Source: "s", ID: "next"}.Key()].state == dedupe.Done
	}, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond) // retries, were there any, are 1 ms apart
	stop()
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 1, calls["taken"], "an event another holder has was retried")
	assert.Empty(t, dead, "an event another holder has was dead-lettered")
	q.mu.Lock()
	defer q.mu.Unlock()
	r := q.rows[event.Event{Source: "s", ID: "taken"}.Key()]
	require.NotNil(t, r, "an event another holder has was released")
	assert.Equal(t, dedupe.Pending, r.state, "an event another holder has was committed or buried")
}

// putWhenRunning puts e once the stream runs.
func putWhenRunning(ctx context.Context, s *intake.Stream, e event.Event) error {
	for {
		err := s.Put(ctx, e)
		if !errors.Is(err, event.ErrNotRunning) {
			return err
		}
		time.Sleep(time.Millisecond)
	}
}

// AckWait on a delivery whose event another holder took over says so.
func TestAckWaitAfterNotHeld(t *testing.T) {
	leak.Check(t)
	q := newFakeQueue()
	s := intake.New(intake.WithLogger(quiet), intake.WithQueue(q), intake.WithClaimLease(time.Second))
	c1 := s.Subscribe(intake.WithName("tx"))
	c2 := s.Subscribe(intake.WithName("plain"))
	stop := runStream(t, s)
	defer stop()
	require.NoError(t, putWhenRunning(context.Background(), s, event.Event{Source: "s", ID: "x"}))
	d1, d2 := <-c1, <-c2
	d1.Nack(fmt.Errorf("ack: %w", dedupe.ErrNotHeld))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	assert.ErrorIs(t, d2.AckWait(ctx), dedupe.ErrNotHeld)
}

// A Handle function's context carries its delivery, for a backend's
// transactional ack: the event's key and the subscription's name.
func TestHandleContextCarriesTheDelivery(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet))
	type seen struct {
		key, sub string
		attempt  int
	}
	got := make(chan seen, 1)
	s.Handle(func(ctx context.Context, e event.Event) error {
		d, ok := dedupe.DeliveryFromContext(ctx)
		if !ok {
			got <- seen{}
			return nil
		}
		n, _ := intake.Attempt(ctx)
		got <- seen{d.Key(), d.Subscription(), n}
		return nil
	}, intake.WithName("orders"))
	stop := runStream(t, s)
	defer stop()
	e := event.Event{Source: "shop", ID: "o-1"}
	require.NoError(t, putWhenRunning(context.Background(), s, e))
	assert.Equal(t, seen{e.Key(), "orders", 1}, <-got)
}

// The last subscription's delivery says so (a transactional ack then
// commits the key itself), and once told the transaction committed, the
// stream does not commit the key again.
func TestLastDeliveryCommittedByTheTransaction(t *testing.T) {
	leak.Check(t)
	q := newFakeQueue()
	s := intake.New(intake.WithLogger(quiet), intake.WithQueue(q), intake.WithClaimLease(time.Second), intake.WithRetention(time.Hour))
	ca := s.Subscribe(intake.WithName("a"))
	cb := s.Subscribe(intake.WithName("b"))
	stop := runStream(t, s)
	defer stop()
	e := event.Event{Source: "s", ID: "x"}
	require.NoError(t, putWhenRunning(context.Background(), s, e))
	da, db := <-ca, <-cb
	var _ dedupe.LastDelivery = da
	_, last := da.Last()
	assert.False(t, last, "the first of two subscriptions says it is the last")
	da.Ack()
	retain, last := db.Last()
	assert.True(t, last, "the second of two subscriptions, the first acked, is not the last")
	assert.Equal(t, time.Hour, retain)
	db.Committed()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, db.AckWait(ctx))
	q.mu.Lock()
	defer q.mu.Unlock()
	assert.Equal(t, dedupe.Pending, q.rows[e.Key()].state, "the stream committed a key a transaction had committed")
}
