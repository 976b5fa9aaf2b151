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

// A poison event is kept as dead with its error, listed, replayed and
// then handled once; a discarded one is gone; a provider's resend of a
// dead key is handled; a permanent error is dead at once. In memory here;
// the durable backends run the same checks in their conformance suite.
func TestDeadLettersKeptListedReplayedDiscarded(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet))
	var mu sync.Mutex
	fixed := map[string]bool{}
	handled := map[string]int{}
	s.Handle(func(ctx context.Context, e event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case e.Type == "bad-input":
			return intake.Permanent(errors.New("no such customer"))
		case !fixed[e.ID]:
			return fmt.Errorf("handler bug for %s", e.ID)
		}
		handled[e.ID]++
		return nil
	}, intake.WithSources("shop"), intake.WithName("orders"), intake.WithMaxAttempts(3),
		intake.WithRetryBackoff(time.Millisecond, time.Millisecond))
	run(t, s)
	ctx := context.Background()
	for _, e := range []event.Event{
		{Source: "shop", ID: "o1", Type: "order.paid"},
		{Source: "shop", ID: "o2", Type: "order.paid"},
		{Source: "shop", ID: "o3", Type: "order.paid"},
		{Source: "shop", ID: "o4", Type: "bad-input"},
	} {
		require.NoError(t, s.Put(ctx, e))
	}
	var dead []dedupe.Record
	require.Eventually(t, func() bool {
		var err error
		dead, err = s.List(ctx, dedupe.Filter{State: dedupe.Dead})
		return err == nil && len(dead) == 4
	}, 5*time.Second, time.Millisecond)
	byID := map[string]dedupe.Record{}
	for _, r := range dead {
		byID[r.Event.ID] = r
	}
	assert.Equal(t, 3, byID["o1"].Attempts)
	assert.Equal(t, "handler bug for o1", byID["o1"].Failure.Err)
	assert.Equal(t, "orders", byID["o1"].Failure.Subscription)
	assert.False(t, byID["o1"].Failure.First.After(byID["o1"].Failure.Last))
	assert.Equal(t, 1, byID["o4"].Attempts, "a permanent error is dead at once")
	typed, err := s.List(ctx, dedupe.Filter{State: dedupe.Dead, Type: "bad-input"})
	require.NoError(t, err)
	require.Len(t, typed, 1)
	page, err := s.List(ctx, dedupe.Filter{State: dedupe.Dead, Limit: 2})
	require.NoError(t, err)
	next, err := s.List(ctx, dedupe.Filter{State: dedupe.Dead, After: page[1].Seq})
	require.NoError(t, err)
	assert.Len(t, append(page, next...), 4, "pages by seq")

	mu.Lock()
	fixed["o1"], fixed["o2"] = true, true
	mu.Unlock()
	// The operator replays o1; the provider resends o2.
	require.NoError(t, s.Replay(ctx, event.Key("shop", "o1")))
	require.NoError(t, s.Put(ctx, event.Event{Source: "shop", ID: "o2", Type: "order.paid"}))
	// And discards o3.
	require.NoError(t, s.Discard(ctx, event.Key("shop", "o3")))
	_, err = s.Get(ctx, event.Key("shop", "o3"))
	assert.ErrorIs(t, err, dedupe.ErrNotFound)
	assert.ErrorIs(t, s.Replay(ctx, event.Key("shop", "o3")), dedupe.ErrNotFound)

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled["o1"] == 1 && handled["o2"] == 1
	}, 5*time.Second, time.Millisecond)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		dead, err := s.List(ctx, dedupe.Filter{State: dedupe.Dead})
		assert.NoError(c, err)
		assert.Len(c, dead, 1, "only o4 is still dead")
	}, 30*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	assert.Equal(t, map[string]int{"o1": 1, "o2": 1}, handled, "each handled once")
	mu.Unlock()
	// Handled ones are done: a resend is a duplicate.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.ErrorIs(c, s.Put(ctx, event.Event{Source: "shop", ID: "o1"}), event.ErrDuplicate)
	}, 30*time.Second, time.Millisecond)
}

// PutMany answers each event as Put would, in order.
func TestPutMany(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet))
	var mu sync.Mutex
	got := map[string]int{}
	s.Handle(func(ctx context.Context, e event.Event) error {
		mu.Lock()
		got[e.ID]++
		mu.Unlock()
		return nil
	})
	run(t, s)
	ctx := context.Background()
	require.NoError(t, s.Put(ctx, event.Event{Source: "p", ID: "old"}))
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return got["old"] == 1 }, 30*time.Second, time.Millisecond)
	var errs []error
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		errs = s.PutMany(ctx, []event.Event{
			{Source: "p", ID: "a"}, {Source: "p", ID: "old"}, {Source: "", ID: "x"}, {Source: "p", ID: "b"}, {Source: "p", ID: "a"},
		})
		assert.NoError(c, errs[0])
		assert.ErrorIs(c, errs[1], event.ErrDuplicate, "old was handled and committed")
	}, 30*time.Second, time.Millisecond)
	assert.ErrorIs(t, errs[2], event.ErrInvalid)
	assert.NoError(t, errs[3])
	assert.Error(t, errs[4], "the second a of the page is a duplicate of the first")
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return got["a"] == 1 && got["b"] == 1 }, 30*time.Second, time.Millisecond)
}

// List marks an event InFlight while a delivery of it is out to a reader,
// and not while it waits for a retry.
func TestListMarksInFlight(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet))
	ch := s.Subscribe(intake.WithSources("p"), intake.WithRetryBackoff(300*time.Millisecond, 300*time.Millisecond))
	run(t, s)
	ctx := context.Background()
	inFlight := func() bool {
		recs, err := s.List(ctx, dedupe.Filter{Source: "p"})
		return err == nil && len(recs) == 1 && recs[0].InFlight
	}
	require.NoError(t, s.Put(ctx, event.Event{Source: "p", ID: "1"}))

	d := <-ch
	require.Eventually(t, inFlight, 5*time.Second, time.Millisecond, "delivered, not acked")
	d.Nack(errors.New("try again"))
	recs, err := s.List(ctx, dedupe.Filter{Source: "p"})
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.False(t, recs[0].InFlight, "nacked, waiting for its retry")
	d = <-ch
	assert.Equal(t, 2, d.Attempt)
	require.Eventually(t, inFlight, 5*time.Second, time.Millisecond, "redelivered")
	d.Ack()
	require.Eventually(t, func() bool {
		recs, err := s.List(ctx, dedupe.Filter{Source: "p"})
		return err == nil && len(recs) == 0
	}, 5*time.Second, time.Millisecond, "acked events leave the list")
}

// A resend of a dead event that dies again at once is listed as dead
// again (it leaves the dead list before it is admitted, so its second
// death cannot be undone by the first one's removal), and a dead event is
// counted as dead, never as committed.
func TestResentDeadEventThatDiesAgainStaysListed(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet))
	s.Handle(func(ctx context.Context, e event.Event) error {
		return intake.Permanent(errors.New("always refused"))
	}, intake.WithSources("p"), intake.WithWorkers(8))
	run(t, s)
	ctx := context.Background()
	const n, rounds = 500, 5
	for round := 1; round <= rounds; round++ {
		for i := range n {
			// A resend may find the previous death not yet released.
			require.Eventually(t, func() bool {
				return !errors.Is(s.Put(ctx, event.Event{Source: "p", ID: fmt.Sprint(i)}), event.ErrPending)
			}, 10*time.Second, time.Millisecond)
		}
		require.Eventually(t, func() bool {
			return statsOf(s, "p").Dead == int64(round*n)
		}, 10*time.Second, time.Millisecond, "round %d", round)
		require.Eventually(t, func() bool {
			recs, err := s.List(ctx, dedupe.Filter{State: dedupe.Dead, Limit: 2 * n})
			return err == nil && len(recs) == n
		}, 10*time.Second, time.Millisecond, "round %d: every resent event is dead again", round)
	}
	st := statsOf(s, "p")
	assert.Equal(t, int64(rounds*n), st.Accepted)
	assert.Zero(t, st.Committed, "dead events are not committed")
}

// gatedRelease is a store whose first Release waits for open.
type gatedRelease struct {
	dedupe.Store
	once    sync.Once
	entered chan struct{}
	open    chan struct{}
}

func (g *gatedRelease) Release(ctx context.Context, key string) error {
	g.once.Do(func() { close(g.entered); <-g.open })
	return g.Store.Release(ctx, key)
}

// A resend that arrives while a dead event's key is still being released
// is told to come back (pending), not that the event is done: it was
// never handled, and the resend brings it back once the key is free.
func TestResendDuringBurialIsPendingNotDone(t *testing.T) {
	leak.Check(t)
	store := &gatedRelease{Store: dedupe.NewMemory(), entered: make(chan struct{}), open: make(chan struct{})}
	s := intake.New(intake.WithLogger(quiet), intake.WithStore(store))
	s.Handle(func(ctx context.Context, e event.Event) error {
		return intake.Permanent(errors.New("refused"))
	}, intake.WithSources("p"))
	run(t, s)
	ctx := context.Background()
	e := event.Event{Source: "p", ID: "1"}
	require.NoError(t, s.Put(ctx, e))
	<-store.entered // dead, its key not yet released
	err := s.Put(ctx, e)
	assert.ErrorIs(t, err, event.ErrPending)
	assert.NotErrorIs(t, err, event.ErrDuplicate)
	close(store.open)
	require.Eventually(t, func() bool { return s.Put(ctx, e) == nil }, 5*time.Second, time.Millisecond, "the resend is taken once the key is free")
	require.Eventually(t, func() bool { return statsOf(s, "p").Dead == 2 }, 5*time.Second, time.Millisecond)
}

func statsOf(s *intake.Stream, source string) intake.SourceStats {
	for _, st := range s.Stats() {
		if st.Name == source {
			return st
		}
	}
	return intake.SourceStats{}
}
