package intake_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/intakehq/intake/metric"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// listSource puts its events from several goroutines, retrying while the
// queue is full, and then waits for ctx.
type listSource struct {
	name    string
	via     event.Via
	events  []event.Event
	workers int

	accepted, dup atomic.Int64
	done          chan struct{}
}

func (l *listSource) Name() string { return l.name }

func (l *listSource) Run(ctx context.Context, sink event.Sink) error {
	var wg sync.WaitGroup
	for w := range l.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(l.events); i += l.workers {
				e := l.events[i]
				e.Via = l.via
				for {
					err := sink.Put(ctx, e)
					switch {
					case err == nil:
						l.accepted.Add(1)
					case errors.Is(err, event.ErrDuplicate), errors.Is(err, event.ErrPending):
						l.dup.Add(1)
					case errors.Is(err, event.ErrQueueFull):
						time.Sleep(time.Millisecond)
						continue
					default:
						return
					}
					break
				}
			}
		}()
	}
	wg.Wait()
	close(l.done)
	<-ctx.Done()
	return ctx.Err()
}

// run starts s.Run in a goroutine and returns a function that stops it
// and returns Run's error.
func run(t *testing.T, s *intake.Stream) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	// Wait until the stream accepts events.
	select {
	case <-s.Started():
	case err := <-errc:
		t.Fatalf("Run returned before it started: %v", err)
	}
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// collect acks everything from ch and counts deliveries per event id.
func collect(ch <-chan *intake.Delivery) (counts map[string]int, wait func()) {
	counts = map[string]int{}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for d := range ch {
			mu.Lock()
			if d.Event.Source != "probe" {
				counts[d.Event.ID]++
			}
			mu.Unlock()
			d.Ack()
		}
	}()
	return counts, func() { <-done }
}

func TestEachUniqueEventOncePerSubscriber(t *testing.T) {
	leak.Check(t)
	const unique = 1000
	// 1,000 unique events, 30% of them sent twice; the copies go through
	// the other source, as when a webhook and a poll both see an event.
	var web, poll []event.Event
	for i := range unique {
		e := event.Event{Source: "provider", ID: fmt.Sprintf("evt_%04d", i), Type: "thing.created", Payload: []byte(`{}`)}
		if i%2 == 0 {
			web = append(web, e)
		} else {
			poll = append(poll, e)
		}
		if i%10 < 3 {
			if i%2 == 0 {
				poll = append(poll, e)
			} else {
				web = append(web, e)
			}
		}
	}
	src1 := &listSource{name: "provider", via: event.Webhook, events: web, workers: 4, done: make(chan struct{})}
	src2 := &listSource{name: "provider", via: event.Poll, events: poll, workers: 4, done: make(chan struct{})}

	s := intake.New(intake.WithLogger(quiet), intake.WithQueueSize(64))
	s.Add(src1, src2)
	countsA, waitA := collect(s.Subscribe(intake.WithSources("provider")))
	countsB, waitB := collect(s.Subscribe(intake.WithSources("provider")))
	stop := run(t, s)
	<-src1.done
	<-src2.done
	require.NoError(t, stop())
	waitA()
	waitB()

	assert.Equal(t, int64(unique), src1.accepted.Load()+src2.accepted.Load())
	assert.Equal(t, int64(300), src1.dup.Load()+src2.dup.Load())
	for _, counts := range []map[string]int{countsA, countsB} {
		assert.Len(t, counts, unique)
		for id, n := range counts {
			if n != 1 {
				t.Errorf("event %s delivered %d times", id, n)
			}
		}
	}
}

func TestNackRedelivers(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet))
	ch := s.Subscribe(intake.WithSources("p"), intake.WithRetryBackoff(time.Millisecond, time.Millisecond))
	run(t, s)
	require.NoError(t, s.Put(context.Background(), event.Event{Source: "p", ID: "1"}))

	d := <-ch
	assert.Equal(t, 1, d.Attempt)
	d.Nack(errors.New("try again"))
	d.Nack(errors.New("ignored: already nacked"))
	d = <-ch
	assert.Equal(t, "1", d.Event.ID)
	assert.Equal(t, 2, d.Attempt)
	d.Ack()
}

func TestUnackedIsRedeliveredAfterLease(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet))
	ch := s.Subscribe(intake.WithSources("p"), intake.WithAckTimeout(30*time.Millisecond))
	run(t, s)
	require.NoError(t, s.Put(context.Background(), event.Event{Source: "p", ID: "1"}))

	first := <-ch
	start := time.Now()
	second := <-ch // never acked the first
	assert.GreaterOrEqual(t, time.Since(start), 25*time.Millisecond)
	assert.Equal(t, 2, second.Attempt)
	first.Nack(errors.New("late nack is ignored"))
	second.Ack()
	select {
	case d := <-ch:
		t.Fatalf("unexpected delivery after ack: attempt %d", d.Attempt)
	case <-time.After(100 * time.Millisecond):
	}
}

// countingRecorder counts metric.Count calls by name.
type countingRecorder struct {
	metric.Discard
	mu sync.Mutex
	n  map[string]int64
}

func (r *countingRecorder) Count(name, source, _ string, delta int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int64{}
	}
	r.n[name] += delta
	r.n[name+"|"+source] += delta
}

func (r *countingRecorder) getFor(name, source string) int64 {
	return r.get(name + "|" + source)
}

func (r *countingRecorder) get(name string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[name]
}

func TestHandleRetriesThenCommitsOnce(t *testing.T) {
	leak.Check(t)
	store := dedupe.NewMemory()
	rec := &countingRecorder{}
	s := intake.New(intake.WithLogger(quiet), intake.WithStore(store), intake.WithMetrics(rec))
	var calls atomic.Int64
	done := make(chan struct{})
	s.Handle(func(ctx context.Context, e event.Event) error {
		if e.Source != "p" {
			return nil
		}
		if calls.Add(1) <= 3 {
			return errors.New("not yet")
		}
		close(done)
		return nil
	}, intake.WithRetryBackoff(time.Millisecond, 5*time.Millisecond))
	run(t, s)
	require.NoError(t, s.Put(context.Background(), event.Event{Source: "p", ID: "1"}))
	<-done

	require.Eventually(t, func() bool {
		st, err := store.Claim(context.Background(), event.Key("p", "1"), time.Hour)
		return err == nil && st == dedupe.Done
	}, 30*time.Second, time.Millisecond)
	assert.Equal(t, int64(4), calls.Load())
	assert.Equal(t, int64(3), rec.getFor(metric.Nacked, "p"))
	require.Eventually(t, func() bool { return rec.getFor(metric.Committed, "p") == 1 }, 30*time.Second, time.Millisecond)
	err := s.Put(context.Background(), event.Event{Source: "p", ID: "1"})
	assert.ErrorIs(t, err, event.ErrDuplicate)
}

func TestHandleDeadLettersAfterMaxAttempts(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet))
	var calls atomic.Int64
	var mu sync.Mutex
	var attempts []int
	dead := make(chan intake.DeadLetter, 1)
	s.Handle(func(ctx context.Context, e event.Event) error {
		calls.Add(1)
		n, sub := intake.Attempt(ctx)
		mu.Lock()
		attempts = append(attempts, n)
		mu.Unlock()
		assert.Equal(t, "billing", sub)
		return errors.New("always fails")
	},
		intake.WithSources("p"),
		intake.WithName("billing"),
		intake.WithMaxAttempts(4),
		intake.WithRetryBackoff(time.Millisecond, time.Millisecond),
		intake.WithDeadLetter(func(_ context.Context, d intake.DeadLetter) { dead <- d }),
	)
	run(t, s)
	require.NoError(t, s.Put(context.Background(), event.Event{Source: "p", ID: "1"}))
	select {
	case d := <-dead:
		assert.EqualError(t, d.Err, "always fails")
		assert.Equal(t, 4, d.Attempts)
		assert.Equal(t, "billing", d.Subscription)
		assert.Equal(t, "1", d.Event.ID)
	case <-time.After(5 * time.Second):
		t.Fatal("no dead letter")
	}
	time.Sleep(20 * time.Millisecond)
	assert.Equal(t, int64(4), calls.Load())
	mu.Lock()
	assert.Equal(t, []int{1, 2, 3, 4}, attempts, "the handler sees its attempt number")
	mu.Unlock()
	n, sub := intake.Attempt(context.Background())
	assert.Zero(t, n)
	assert.Empty(t, sub)
	// Dead is kept, not committed: a provider's resend is a new delivery.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		r, err := s.Get(context.Background(), event.Key("p", "1"))
		assert.NoError(c, err)
		assert.Equal(c, dedupe.Dead, r.State)
	}, 30*time.Second, time.Millisecond)
	require.NoError(t, s.Put(context.Background(), event.Event{Source: "p", ID: "1"}))
	require.Eventually(t, func() bool { return calls.Load() > 4 }, 30*time.Second, time.Millisecond, "the resend is handled")
}

func TestHandlePanicIsAFailure(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet))
	var calls atomic.Int64
	ok := make(chan struct{})
	s.Handle(func(ctx context.Context, e event.Event) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		close(ok)
		return nil
	}, intake.WithSources("p"), intake.WithRetryBackoff(time.Millisecond, time.Millisecond))
	run(t, s)
	require.NoError(t, s.Put(context.Background(), event.Event{Source: "p", ID: "1"}))
	select {
	case <-ok:
	case <-time.After(5 * time.Second):
		t.Fatal("not retried after panic")
	}
}

func TestQueueFull(t *testing.T) {
	leak.Check(t)
	store := dedupe.NewMemory()
	s := intake.New(intake.WithLogger(quiet), intake.WithStore(store), intake.WithQueueSize(2),
		intake.WithRetryAfter(3*time.Second), intake.WithDrainTimeout(10*time.Millisecond))
	ch := s.Subscribe(intake.WithSources("p")) // never read until the end
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	require.Eventually(t, func() bool {
		return !errors.Is(s.Put(ctx, event.Event{Source: "p", ID: "1"}), event.ErrNotRunning)
	}, 30*time.Second, time.Millisecond)
	require.NoError(t, s.Put(ctx, event.Event{Source: "p", ID: "2"}))

	err := s.Put(ctx, event.Event{Source: "p", ID: "3"})
	require.ErrorIs(t, err, event.ErrQueueFull)
	d, ok := event.RetryDelay(err)
	assert.True(t, ok)
	assert.Equal(t, 3*time.Second, d)
	// Nothing was recorded for the rejected event.
	st, err := store.Claim(ctx, event.Key("p", "3"), time.Minute)
	require.NoError(t, err)
	assert.Equal(t, dedupe.Claimed, st)
	require.NoError(t, store.Release(ctx, event.Key("p", "3")))

	// Once a slot frees up, the same event is accepted.
	(<-ch).Ack()
	require.Eventually(t, func() bool {
		return s.Put(ctx, event.Event{Source: "p", ID: "3"}) == nil
	}, 30*time.Second, time.Millisecond)
	cancel()
	go func() {
		for d := range ch {
			_ = d // leave unacked: shutdown releases them
		}
	}()
	require.NoError(t, <-errc)
}

func TestPutOutsideRun(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet))
	_, wait := collect(s.Subscribe())
	defer wait()
	err := s.Put(context.Background(), event.Event{Source: "p", ID: "1"})
	assert.ErrorIs(t, err, event.ErrNotRunning)
	_, retry := event.RetryDelay(err)
	assert.True(t, retry)

	stop := run(t, s)
	require.NoError(t, stop())
	assert.ErrorIs(t, s.Put(context.Background(), event.Event{Source: "p", ID: "2"}), event.ErrClosed)
	assert.ErrorIs(t, s.Run(context.Background()), intake.ErrAlreadyRunning)
}

func TestPutInvalid(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet))
	assert.ErrorIs(t, s.Put(context.Background(), event.Event{Source: "p"}), event.ErrInvalid)
	assert.ErrorIs(t, s.Put(context.Background(), event.Event{ID: "1"}), event.ErrInvalid)
}

func TestRunWithoutSubscription(t *testing.T) {
	assert.ErrorIs(t, intake.New().Run(context.Background()), intake.ErrNoSubscription)
}

func TestShutdownDrainsQueue(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet), intake.WithDrainTimeout(5*time.Second))
	var handled atomic.Int64
	s.Handle(func(ctx context.Context, e event.Event) error {
		time.Sleep(2 * time.Millisecond)
		handled.Add(1)
		return nil
	}, intake.WithSources("p"))
	stop := run(t, s)
	for i := range 50 {
		require.NoError(t, s.Put(context.Background(), event.Event{Source: "p", ID: fmt.Sprint(i)}))
	}
	require.NoError(t, stop())
	assert.Equal(t, int64(50), handled.Load(), "every acknowledged event is delivered before Run returns")
}

func TestShutdownReleasesUndelivered(t *testing.T) {
	leak.Check(t)
	store := dedupe.NewMemory()
	rec := &countingRecorder{}
	s := intake.New(intake.WithLogger(quiet), intake.WithStore(store), intake.WithMetrics(rec),
		intake.WithDrainTimeout(20*time.Millisecond))
	block := make(chan struct{})
	s.Handle(func(ctx context.Context, e event.Event) error {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return ctx.Err()
	}, intake.WithSources("p"))
	stop := run(t, s)
	for i := range 5 {
		require.NoError(t, s.Put(context.Background(), event.Event{Source: "p", ID: fmt.Sprint(i)}))
	}
	require.NoError(t, stop())
	assert.Equal(t, int64(5), rec.get(metric.Dropped))
	for i := range 5 {
		st, err := store.Claim(context.Background(), event.Key("p", fmt.Sprint(i)), time.Minute)
		require.NoError(t, err)
		assert.Equal(t, dedupe.Claimed, st, "key of undelivered event %d released", i)
	}
}

type flakySource struct {
	runs atomic.Int64
}

func (f *flakySource) Name() string { return "flaky" }
func (f *flakySource) Run(ctx context.Context, sink event.Sink) error {
	switch f.runs.Add(1) {
	case 1:
		return errors.New("first run fails")
	case 2:
		panic("second run panics")
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestSourceRestartedWithBackoff(t *testing.T) {
	leak.Check(t)
	rec := &countingRecorder{}
	s := intake.New(intake.WithLogger(quiet), intake.WithMetrics(rec),
		intake.WithSourceRestart(time.Millisecond, 5*time.Millisecond))
	src := &flakySource{}
	s.Add(src)
	_, wait := collect(s.Subscribe())
	defer wait()
	stop := run(t, s)
	require.Eventually(t, func() bool { return src.runs.Load() == 3 }, 30*time.Second, time.Millisecond)
	require.NoError(t, stop())
	assert.Equal(t, int64(2), rec.get(metric.SourceError))
}

func TestSubscriptionFilters(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet))
	byType, waitT := collect(s.Subscribe(intake.WithSources("p"), intake.WithTypes("a")))
	all, waitA := collect(s.Subscribe(intake.WithSources("p", "q")))
	stop := run(t, s)
	ctx := context.Background()
	require.NoError(t, s.Put(ctx, event.Event{Source: "p", ID: "1", Type: "a"}))
	require.NoError(t, s.Put(ctx, event.Event{Source: "p", ID: "2", Type: "b"}))
	require.NoError(t, s.Put(ctx, event.Event{Source: "q", ID: "3", Type: "a"}))
	require.NoError(t, stop())
	waitT()
	waitA()
	assert.Equal(t, map[string]int{"1": 1}, byType)
	assert.Equal(t, map[string]int{"1": 1, "2": 1, "3": 1}, all)
}

// BenchmarkPutDeliverAck measures the stream's throughput with the memory
// store: Put from parallel goroutines, one subscription acking.
func BenchmarkPutDeliverAck(b *testing.B) {
	s := intake.New(intake.WithLogger(quiet), intake.WithQueueSize(4096),
		intake.WithStore(dedupe.NewMemory(dedupe.WithCapacity(1<<20))))
	ch := s.Subscribe()
	var acked atomic.Int64
	go func() {
		for d := range ch {
			d.Ack()
			acked.Add(1)
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Run(ctx) }()
	for errors.Is(s.Put(ctx, event.Event{Source: "warm", ID: "up"}), event.ErrNotRunning) {
		time.Sleep(time.Millisecond)
	}
	acked.Store(0)
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := event.Event{Source: "bench", ID: fmt.Sprint(next.Add(1))}
			for {
				err := s.Put(ctx, e)
				if err == nil {
					break
				}
				if !errors.Is(err, event.ErrQueueFull) {
					b.Error(err)
					return
				}
				time.Sleep(10 * time.Microsecond)
			}
		}
	})
	for acked.Load() < int64(b.N) {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	cancel()
	<-errc
}

// A handler that hangs gets its context canceled at the ack timeout; the
// attempt counts as a failure and the event is tried again.
func TestHandlerHangingPastDeadline(t *testing.T) {
	leak.Check(t)
	s := intake.New(intake.WithLogger(quiet))
	var calls atomic.Int64
	done := make(chan struct{})
	s.Handle(func(ctx context.Context, e event.Event) error {
		if calls.Add(1) == 1 {
			<-ctx.Done() // hangs until the deadline
			return ctx.Err()
		}
		close(done)
		return nil
	}, intake.WithSources("p"), intake.WithAckTimeout(50*time.Millisecond), intake.WithRetryBackoff(time.Millisecond, time.Millisecond))
	run(t, s)
	require.NoError(t, s.Put(context.Background(), event.Event{Source: "p", ID: "1"}))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("not retried after the hung attempt")
	}
	assert.Equal(t, int64(2), calls.Load())
}
