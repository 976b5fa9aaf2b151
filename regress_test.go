package intake_test

// Regression tests for the defects of issue #10, each written to fail on
// the stream as it was before the fix.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/leak"
)

// next receives one delivery from ch, or fails the test after wait.
func next(t *testing.T, ch <-chan *intake.Delivery, wait time.Duration) *intake.Delivery {
	t.Helper()
	select {
	case d, ok := <-ch:
		require.True(t, ok, "channel closed")
		return d
	case <-time.After(wait):
		t.Fatalf("no delivery within %v", wait)
		return nil
	}
}

// none fails the test if ch delivers anything within wait.
func none(t *testing.T, ch <-chan *intake.Delivery, wait time.Duration) {
	t.Helper()
	select {
	case d, ok := <-ch:
		if ok {
			t.Fatalf("unexpected delivery of %s/%s, attempt %d", d.Event.Source, d.Event.ID, d.Attempt)
		}
	case <-time.After(wait):
	}
}

// Defect 1: the first of Ack and Nack wins. `defer d.Ack()` with a Nack on
// error must redeliver the event.
func TestNackThenAckRedelivers(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet))
	ch := s.Subscribe(intake.WithSources("p"), intake.WithRetryBackoff(time.Millisecond, time.Millisecond))
	run(t, s)
	require.NoError(t, s.Put(context.Background(), event.Event{Source: "p", ID: "1"}))

	d := next(t, ch, 30*time.Second)
	func() {
		defer d.Ack() // ignored: the Nack came first
		d.Nack(errors.New("failed"))
	}()
	d2 := next(t, ch, 30*time.Second)
	assert.Equal(t, 2, d2.Attempt)
	d2.Ack()

	// And the other order: an Ack then a Nack commits once.
	require.NoError(t, s.Put(context.Background(), event.Event{Source: "p", ID: "2"}))
	d = next(t, ch, 30*time.Second)
	d.Ack()
	d.Nack(errors.New("late"))
	none(t, ch, 100*time.Millisecond)
}

// Defect 2: an Ack that comes after the lease ran out, while the
// redelivery is waiting to be sent, must stop that redelivery.
func TestLateAckStopsPreparedRedelivery(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet))
	ch := s.Subscribe(intake.WithSources("p"), intake.WithAckTimeout(50*time.Millisecond))
	run(t, s)
	require.NoError(t, s.Put(context.Background(), event.Event{Source: "p", ID: "1"}))
	d := next(t, ch, 30*time.Second)
	time.Sleep(200 * time.Millisecond) // the lease ran out; attempt 2 waits to be sent
	d.Ack()
	none(t, ch, 300*time.Millisecond)
}

// slowStore delays every Claim until gate is closed, so that concurrent
// Puts overlap.
type slowStore struct {
	dedupe.Store
	gate    chan struct{}
	waiting atomic.Int64
}

func (s *slowStore) Claim(ctx context.Context, key string, lease time.Duration) (dedupe.State, error) {
	s.waiting.Add(1)
	<-s.gate
	return s.Store.Claim(ctx, key, lease)
}

// Defect 5: retries of an event already done must be answered as
// duplicates, never "full", and must not keep a new event out of an empty
// queue.
func TestDuplicatesTakeNoQueueSlot(t *testing.T) {
	leak.Check(t)
	mem := dedupe.NewMemory()
	ctx := context.Background()
	require.NoError(t, mem.Commit(ctx, event.Key("p", "done"), time.Hour))
	store := &slowStore{Store: mem, gate: make(chan struct{})}
	s := intake.New(intake.WithLogger(quiet), intake.WithStore(store), intake.WithQueueSize(4))
	_, wait := collect(s.Subscribe(intake.WithSources("p")))
	defer wait()
	close(store.gate) // let run's probe through
	stop := run(t, s)
	store.gate = make(chan struct{})
	store.waiting.Store(0)

	errs := make(chan error, 9)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- s.Put(ctx, event.Event{Source: "p", ID: "done"}) }()
	}
	// Let the eight retries reach the store before the new event arrives.
	require.Eventually(t, func() bool { return store.waiting.Load() >= 4 }, 30*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	wg.Add(1)
	go func() { defer wg.Done(); errs <- s.Put(ctx, event.Event{Source: "p", ID: "new"}) }()
	time.Sleep(20 * time.Millisecond)
	close(store.gate)
	wg.Wait()
	close(errs)
	var dup, ok, other int
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, event.ErrDuplicate):
			dup++
		default:
			other++
			t.Logf("unexpected: %v", err)
		}
	}
	assert.Equal(t, 8, dup, "every retry of a done event is a duplicate")
	assert.Equal(t, 1, ok, "the new event is accepted")
	assert.Zero(t, other)
	require.NoError(t, stop())
}

// fakeQueue is an in-memory durable queue for the stream's tests: keys
// and events in maps, claims per holder, Adopt optionally slow.
type fakeQueue struct {
	mu        sync.Mutex
	now       func() time.Time
	rows      map[string]*fakeRow
	seq       int
	adoptGate chan struct{} // when set, Adopt waits for it
	adopting  atomic.Bool
	extended  map[string]int // Extend calls with a positive lease, per key
	holder    string
	// byHolder adopts as Postgres and Redis do: a row of a live holder
	// (this one) never, however old its claim; one given back at once.
	byHolder bool
	// lostReplies makes that many Enqueue calls do their write and then
	// fail, as when the connection breaks before the reply comes.
	lostReplies int
}

type fakeRow struct {
	e       event.Event
	state   dedupe.State
	expires time.Time
	holder  string
	seq     int
	queued  bool
	failure *dedupe.Failure
	done    []string // subscriptions acked in a transaction
}

func newFakeQueue() *fakeQueue {
	return &fakeQueue{now: time.Now, rows: map[string]*fakeRow{}, extended: map[string]int{}, holder: "a"}
}

func (q *fakeQueue) Enqueue(_ context.Context, key string, e event.Event, lease time.Duration) (dedupe.State, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if r, ok := q.rows[key]; ok && r.expires.After(q.now()) {
		return r.state, nil
	} else if ok && r.queued {
		return dedupe.Pending, nil // expired claim with an event: adoptable, not claimable
	}
	q.seq++
	q.rows[key] = &fakeRow{e: e, state: dedupe.Pending, expires: q.now().Add(lease), holder: q.holder, seq: q.seq, queued: true}
	if q.lostReplies > 0 {
		q.lostReplies--
		return 0, errors.New("fake: connection reset before the reply")
	}
	return dedupe.Claimed, nil
}

func (q *fakeQueue) Adopt(ctx context.Context, n int, lease time.Duration) ([]dedupe.Stored, error) {
	if q.adoptGate != nil {
		q.adopting.Store(true)
		select {
		case <-q.adoptGate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []dedupe.Stored
	for k, r := range q.rows {
		if len(out) == n {
			break
		}
		adoptable := !r.expires.After(q.now())
		if q.byHolder {
			adoptable = r.holder == ""
		}
		if r.queued && r.state == dedupe.Pending && adoptable {
			r.holder, r.expires = q.holder, q.now().Add(lease)
			out = append(out, dedupe.Stored{Key: k, Event: r.e, Done: r.done})
		}
	}
	return out, nil
}

func (q *fakeQueue) Extend(_ context.Context, keys []string, lease time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, k := range keys {
		if r, ok := q.rows[k]; ok && r.state == dedupe.Pending && r.holder == q.holder {
			r.expires = q.now().Add(lease)
			if lease > 0 {
				q.extended[k]++
			} else {
				r.holder = "" // given back
			}
		}
	}
	return nil
}

func (q *fakeQueue) CommitMany(_ context.Context, keys []string, retain time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, key := range keys {
		q.rows[key] = &fakeRow{state: dedupe.Done, expires: q.now().Add(retain)}
	}
	return nil
}

func (q *fakeQueue) Bury(_ context.Context, key string, f dedupe.Failure, retain time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if r, ok := q.rows[key]; ok {
		r.state, r.expires, r.failure = deadState, q.now().Add(retain), &f
	}
	return nil
}

// deadState marks a dead row of the fake.
const deadState = dedupe.State(99)

func (q *fakeQueue) List(context.Context, dedupe.Filter) ([]dedupe.Record, error) { return nil, nil }
func (q *fakeQueue) Get(_ context.Context, key string) (dedupe.Record, error) {
	return dedupe.Record{}, dedupe.ErrNotFound
}
func (q *fakeQueue) Replay(context.Context, string) error  { return nil }
func (q *fakeQueue) Discard(context.Context, string) error { return nil }

func (q *fakeQueue) Release(_ context.Context, key string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.rows, key)
	return nil
}

func (q *fakeQueue) extensions(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.extended[key]
}

// Defect 6: a slow Adopt must not take room that sources then cannot use.
func TestAdoptionReservesNoRoom(t *testing.T) {
	leak.Check(t)
	q := newFakeQueue()
	q.adoptGate = make(chan struct{})
	s := intake.New(intake.WithLogger(quiet), intake.WithQueue(q), intake.WithQueueSize(4),
		intake.WithClaimLease(time.Second))
	s.Subscribe(intake.WithAckTimeout(time.Hour)) // never read: its events hold their slots
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	require.Eventually(t, q.adopting.Load, 30*time.Second, time.Millisecond)
	for i := range 4 {
		var err error
		require.Eventually(t, func() bool {
			err = s.Put(ctx, event.Event{Source: "held", ID: fmt.Sprint(i)})
			return !errors.Is(err, event.ErrNotRunning)
		}, 30*time.Second, time.Millisecond)
		require.NoError(t, err, "put %d into an empty queue of 4 while Adopt runs", i+1)
	}
	close(q.adoptGate)
	cancel()
	require.NoError(t, <-errc)
}

// Defect 7: claims are renewed while the stream drains, so that another
// replica does not adopt what is still being handled.
func TestClaimsRenewedWhileDraining(t *testing.T) {
	leak.Check(t)
	q := newFakeQueue()
	s := intake.New(intake.WithLogger(quiet), intake.WithQueue(q), intake.WithClaimLease(150*time.Millisecond),
		intake.WithDrainTimeout(5*time.Second))
	started := make(chan struct{})
	release := make(chan struct{})
	s.Handle(func(ctx context.Context, e event.Event) error {
		close(started)
		<-release
		return nil
	}, intake.WithSources("p"), intake.WithAckTimeout(10*time.Second))
	stop := run(t, s)
	require.NoError(t, s.Put(context.Background(), event.Event{Source: "p", ID: "slow"}))
	<-started
	key := event.Key("p", "slow")
	go func() {
		// The stream drains for 600 ms, four claim leases.
		time.Sleep(600 * time.Millisecond)
		close(release)
	}()
	before := q.extensions(key)
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	time.Sleep(500 * time.Millisecond)
	assert.GreaterOrEqual(t, q.extensions(key)-before, 2, "claim renewed while draining")
	require.NoError(t, <-stopped)
}

// Defect 8: options that would turn into busy loops are validated: zero
// is the documented default, a negative value panics.
func TestOptionsZeroMeansDefault(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet), intake.WithQueueSize(0), intake.WithRetention(0),
		intake.WithDrainTimeout(50*time.Millisecond))
	ch := s.Subscribe(intake.WithSources("p"), intake.WithAckTimeout(0))
	run(t, s)
	for i := range 3 {
		require.NoError(t, s.Put(context.Background(), event.Event{Source: "p", ID: fmt.Sprint(i)}),
			"queue size 0 is the default (10,000), not 1")
	}
	d := next(t, ch, 30*time.Second)
	assert.Equal(t, 1, d.Attempt)
	// An ack timeout of 0 is the default (30 s), not a redelivery loop.
	for range 2 {
		d := next(t, ch, 30*time.Second)
		assert.Equal(t, 1, d.Attempt)
	}
	none(t, ch, 200*time.Millisecond)
	// A retention of 0 is the default (7 days): acked events are done.
	d.Ack()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.ErrorIs(c, s.Put(context.Background(), event.Event{Source: "p", ID: "0"}), event.ErrDuplicate)
	}, 30*time.Second, time.Millisecond)
}

func TestOptionsNegativePanic(t *testing.T) {
	tests := []struct {
		name string
		fn   func()
	}{
		{"QueueSize", func() { intake.New(intake.WithQueueSize(-1)) }},
		{"Retention", func() { intake.New(intake.WithRetention(-time.Second)) }},
		{"ClaimLease", func() { intake.New(intake.WithClaimLease(-time.Second)) }},
		{"DrainTimeout", func() { intake.New(intake.WithDrainTimeout(-time.Second)) }},
		{"RetryAfter", func() { intake.New(intake.WithRetryAfter(-time.Second)) }},
		{"SourceRestart", func() { intake.New(intake.WithSourceRestart(time.Minute, time.Second)) }},
		{"StoreAndQueue", func() { intake.New(intake.WithStore(dedupe.NewMemory()), intake.WithQueue(newFakeQueue())) }},
		{"AckTimeout", func() { intake.New().Subscribe(intake.WithAckTimeout(-time.Second)) }},
		{"MaxAttempts", func() { intake.New().Subscribe(intake.WithMaxAttempts(-1)) }},
		{"Workers", func() { intake.New().Handle(nopHandler, intake.WithWorkers(-1)) }},
		{"RetryBackoff", func() { intake.New().Subscribe(intake.WithRetryBackoff(time.Minute, time.Second)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Panics(t, tt.fn)
		})
	}
}

func nopHandler(context.Context, event.Event) error { return nil }

// invalidStore refuses every claim as an event it can never keep.
type invalidStore struct{ dedupe.Store }

func (invalidStore) Claim(context.Context, string, time.Duration) (dedupe.State, error) {
	return 0, fmt.Errorf("store: id too odd: %w", event.ErrInvalid)
}

// Defect 4, the stream's half: an event the store can never keep is
// refused as invalid, not as something to retry.
func TestStoreRefusalIsNotRetryable(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet), intake.WithStore(invalidStore{dedupe.NewMemory()}))
	_, wait := collect(s.Subscribe())
	defer wait()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	var err error
	require.Eventually(t, func() bool {
		err = s.Put(ctx, event.Event{Source: "p", ID: "x"})
		return !errors.Is(err, event.ErrNotRunning)
	}, 30*time.Second, time.Millisecond)
	assert.ErrorIs(t, err, event.ErrInvalid)
	_, retry := event.RetryDelay(err)
	assert.False(t, retry, "a refusal must not suggest a retry: %v", err)
	cancel()
	require.NoError(t, <-errc)
}

// commitGate makes Commit wait for gate and fail while failing is set.
type commitGate struct {
	dedupe.Store
	gate    chan struct{}
	failing atomic.Bool
	calls   atomic.Int64
}

func (c *commitGate) Commit(ctx context.Context, key string, retain time.Duration) error {
	if !strings.HasPrefix(key, event.Key("p", "")) {
		return c.Store.Commit(ctx, key, retain) // run's probe
	}
	c.calls.Add(1)
	<-c.gate
	if c.failing.Load() {
		return errors.New("store unreachable")
	}
	return c.Store.Commit(ctx, key, retain)
}

// Ack records and returns: it never waits on the store. A commit that
// fails is tried again, and the event is not redelivered meanwhile.
func TestAckNeverWaitsOnTheStore(t *testing.T) {
	leak.Check(t)
	store := &commitGate{Store: dedupe.NewMemory(), gate: make(chan struct{})}
	store.failing.Store(true)
	s := intake.New(intake.WithLogger(quiet), intake.WithStore(store), intake.WithQueueSize(1))
	ch := s.Subscribe(intake.WithSources("p"), intake.WithAckTimeout(100*time.Millisecond))
	stop := run(t, s)
	require.Eventually(t, func() bool { // once run's probe is committed
		return s.Put(context.Background(), event.Event{Source: "p", ID: "1"}) == nil
	}, 30*time.Second, time.Millisecond)
	d := next(t, ch, 30*time.Second)
	acked := make(chan struct{})
	go func() { d.Ack(); close(acked) }()
	select {
	case <-acked:
	case <-time.After(10 * time.Second):
		t.Fatal("Ack waited on the store's Commit")
	}
	// The commit is stuck, then fails a few times: the slot stays taken
	// and the event is not delivered again.
	require.Eventually(t, func() bool { return store.calls.Load() >= 1 }, 30*time.Second, time.Millisecond)
	assert.ErrorIs(t, s.Put(context.Background(), event.Event{Source: "p", ID: "2"}), event.ErrQueueFull)
	close(store.gate)
	require.Eventually(t, func() bool { return store.calls.Load() >= 3 }, 5*time.Second, time.Millisecond)
	none(t, ch, 250*time.Millisecond)
	store.failing.Store(false)
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.ErrorIs(c, s.Put(context.Background(), event.Event{Source: "p", ID: "1"}), event.ErrDuplicate)
	}, 5*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { // once the commit freed the slot
		return s.Put(context.Background(), event.Event{Source: "p", ID: "2"}) == nil
	}, 5*time.Second, time.Millisecond)
	next(t, ch, 30*time.Second).Ack()
	require.NoError(t, stop())
}

// Issue #12: a Handle function that ignores its context does not block
// Run forever: Run returns within the drain timeout and a grace, with an
// error naming the subscription, and the event's key is released.
func TestShutdownBoundedWithStuckHandler(t *testing.T) {
	store := dedupe.NewMemory()
	s := intake.New(intake.WithLogger(quiet), intake.WithStore(store), intake.WithDrainTimeout(100*time.Millisecond))
	release := make(chan struct{})
	started := make(chan struct{})
	s.Handle(func(ctx context.Context, e event.Event) error {
		close(started)
		<-release // ignores ctx
		return nil
	}, intake.WithSources("p"), intake.WithName("stubborn"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for errors.Is(s.Put(ctx, event.Event{Source: "p", ID: "1"}), event.ErrNotRunning) {
		time.Sleep(time.Millisecond)
	}
	<-started
	t0 := time.Now()
	cancel()
	select {
	case err := <-done:
		took := time.Since(t0)
		assert.ErrorIs(t, err, intake.ErrHandlerStuck)
		assert.ErrorContains(t, err, "stubborn")
		assert.Less(t, took, 100*time.Millisecond+3*time.Second, "the drain timeout and a grace")
	case <-time.After(10 * time.Second):
		t.Fatal("Run blocked on a handler that ignores its context")
	}
	st, err := store.Claim(context.Background(), event.Key("p", "1"), time.Minute)
	require.NoError(t, err)
	assert.Equal(t, dedupe.Claimed, st, "the stuck event's key was released for a retry")
	close(release)
}

// Found by the fault campaign (examples/chaos): a claim whose write
// commits but whose reply is lost (a connection reset after the commit)
// left the event stored and held by this live holder, which did not have
// it. Nobody adopted it (its holder lives) and every resend was answered
// pending: the event was never delivered. The stream now gives back the
// key of a claim that failed, so the event is adopted and delivered once.
func TestLostClaimReplyIsGivenBack(t *testing.T) {
	leak.Check(t)
	for _, many := range []bool{false, true} {
		t.Run(fmt.Sprintf("many=%v", many), func(t *testing.T) {
			q := newFakeQueue()
			q.byHolder, q.lostReplies = true, 1
			s := intake.New(intake.WithLogger(quiet), intake.WithQueue(q), intake.WithClaimLease(time.Second))
			var handled atomic.Int32
			s.Handle(func(ctx context.Context, e event.Event) error { handled.Add(1); return nil })
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- s.Run(ctx) }()
			e := event.Event{Source: "p", ID: "1"}
			var err error
			require.Eventually(t, func() bool {
				if many {
					err = s.PutMany(ctx, []event.Event{e})[0]
				} else {
					err = s.Put(ctx, e)
				}
				return !errors.Is(err, event.ErrNotRunning)
			}, 30*time.Second, time.Millisecond)
			require.Error(t, err, "the claim's reply was lost")
			require.Eventually(t, func() bool { return handled.Load() == 1 }, 5*time.Second, 10*time.Millisecond,
				"the stored event was never delivered")
			require.Eventually(t, func() bool { return errors.Is(s.Put(ctx, e), event.ErrDuplicate) }, 5*time.Second, 10*time.Millisecond,
				"a resend is answered as done")
			cancel()
			require.NoError(t, <-errc)
			assert.EqualValues(t, 1, handled.Load())
		})
	}
}
