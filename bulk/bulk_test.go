package bulk_test

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
	"github.com/intakehq/intake/bulk"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

func TestFilterMatch(t *testing.T) {
	died := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	dead := dedupe.Record{State: dedupe.Dead, Event: event.Event{Source: "stripe", Type: "invoice.paid", Meta: map[string]string{event.MetaTenant: "acme"}},
		Failure: &dedupe.Failure{Err: "db: connection refused", Class: event.Permanent, Last: died}}
	queued := dedupe.Record{State: dedupe.Queued, Event: event.Event{Source: "stripe", Type: "invoice.paid", Time: died}}
	for _, tc := range []struct {
		name string
		f    bulk.Filter
		r    dedupe.Record
		want bool
	}{
		{"zero filter: every dead event", bulk.Filter{}, dead, true},
		{"zero filter: not a queued one", bulk.Filter{}, queued, false},
		{"queued", bulk.Filter{State: dedupe.Queued}, queued, true},
		{"source", bulk.Filter{Source: "stripe"}, dead, true},
		{"other source", bulk.Filter{Source: "github"}, dead, false},
		{"type", bulk.Filter{Type: "invoice.paid"}, dead, true},
		{"other type", bulk.Filter{Type: "invoice.created"}, dead, false},
		{"tenant", bulk.Filter{Tenant: "acme"}, dead, true},
		{"other tenant", bulk.Filter{Tenant: "globex"}, dead, false},
		{"error text", bulk.Filter{Error: "connection refused"}, dead, true},
		{"other error", bulk.Filter{Error: "timeout"}, dead, false},
		{"class", bulk.Filter{Class: "permanent"}, dead, true},
		{"other class", bulk.Filter{Class: "transient"}, dead, false},
		{"class of a queued event", bulk.Filter{State: dedupe.Queued, Class: "transient"}, queued, false},
		{"error text of a queued event", bulk.Filter{State: dedupe.Queued, Error: "x"}, queued, false},
		{"since: at the bound", bulk.Filter{Since: died}, dead, true},
		{"since: after", bulk.Filter{Since: died.Add(time.Second)}, dead, false},
		{"until: at the bound is out", bulk.Filter{Until: died}, dead, false},
		{"until: after", bulk.Filter{Until: died.Add(time.Second)}, dead, true},
		{"queued by event time", bulk.Filter{State: dedupe.Queued, Since: died.Add(-time.Hour), Until: died.Add(time.Hour)}, queued, true},
		{"every field", bulk.Filter{Source: "stripe", Type: "invoice.paid", Tenant: "acme", Error: "refused", Since: died.Add(-time.Minute), Until: died.Add(time.Minute)}, dead, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, tc.f.Match(tc.r))
		})
	}
}

func TestValidate(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		name string
		j    bulk.Job
		ok   bool
	}{
		{"replay dead", bulk.Job{Action: bulk.Replay}, true},
		{"discard queued", bulk.Job{Action: bulk.Discard, Filter: bulk.Filter{State: dedupe.Queued}}, true},
		{"no action", bulk.Job{}, false},
		{"unknown action", bulk.Job{Action: "delete"}, false},
		{"replay queued", bulk.Job{Action: bulk.Replay, Filter: bulk.Filter{State: dedupe.Queued}}, false},
		{"unknown state", bulk.Job{Action: bulk.Discard, Filter: bulk.Filter{State: 9}}, false},
		{"since after until", bulk.Job{Action: bulk.Replay, Filter: bulk.Filter{Since: now, Until: now.Add(-time.Second)}}, false},
		{"unknown class", bulk.Job{Action: bulk.Replay, Filter: bulk.Filter{Class: "fatal"}}, false},
		{"since equal to until", bulk.Job{Action: bulk.Replay, Filter: bulk.Filter{Since: now, Until: now}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.j.Validate()
			if tc.ok {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, bulk.ErrInvalid)
			}
		})
	}
}

func TestIDNamesTheJob(t *testing.T) {
	a := bulk.Job{Action: bulk.Replay, Filter: bulk.Filter{Type: "x"}}
	b := bulk.Job{Action: bulk.Replay, Filter: bulk.Filter{Type: "x", State: dedupe.Dead}}
	assert.Equal(t, a.ID(), b.ID(), "the default state is dead")
	assert.NotEqual(t, a.ID(), bulk.Job{Action: bulk.Discard, Filter: a.Filter}.ID())
	assert.NotEqual(t, a.ID(), bulk.Job{Action: bulk.Replay, Filter: bulk.Filter{Type: "y"}}.ID())
	assert.Equal(t, `replay dead events of type x`, a.String())
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// deadStream is a running in-memory stream holding n dead events: even
// ones of type "even", odd ones of type "odd". Once fixed, its handler
// counts each event it handles.
type deadStream struct {
	s       *intake.Stream
	fixed   atomic.Bool
	mu      sync.Mutex
	handled map[string]int
}

func newDeadStream(t *testing.T, n int) *deadStream {
	t.Helper()
	d := &deadStream{s: intake.New(intake.WithLogger(quiet), intake.WithQueueSize(2*n)), handled: map[string]int{}}
	d.s.Handle(func(ctx context.Context, e event.Event) error {
		if !d.fixed.Load() {
			return errors.New("handler bug")
		}
		d.mu.Lock()
		d.handled[e.ID]++
		d.mu.Unlock()
		return nil
	}, intake.WithMaxAttempts(1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-d.s.Started()
	for i := range n {
		typ := "even"
		if i%2 == 1 {
			typ = "odd"
		}
		require.NoError(t, d.s.Put(ctx, event.Event{Source: "shop", ID: fmt.Sprint(i), Type: typ}))
	}
	require.Eventually(t, func() bool { return d.count(dedupe.Dead) == n }, 10*time.Second, time.Millisecond)
	d.fixed.Store(true)
	return d
}

func (d *deadStream) count(state dedupe.RecordState) int {
	recs, err := dedupe.Select(context.Background(), d.s, dedupe.Filter{State: state}, 0, func(dedupe.Record) bool { return true })
	if err != nil {
		return -1
	}
	return len(recs)
}

// handledOnce waits until every event of typ (of n) is handled, then
// checks each was handled exactly once and no other was.
func (d *deadStream) handledOnce(t *testing.T, n int, typ string) {
	t.Helper()
	want := n / 2
	require.Eventually(t, func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.handled) >= want
	}, 10*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond) // a second handling would show now
	d.mu.Lock()
	defer d.mu.Unlock()
	assert.Len(t, d.handled, want)
	for id, c := range d.handled {
		var i int
		fmt.Sscan(id, &i)
		assert.Equal(t, typ == "odd", i%2 == 1, "event %s is not of %s", id, typ)
		assert.Equal(t, 1, c, "event %s handled %d times", id, c)
	}
}

func TestReplayByFilter(t *testing.T) {
	const n = 400
	d := newDeadStream(t, n)
	var reports atomic.Int64
	p, err := bulk.Run(context.Background(), d.s, bulk.Job{Action: bulk.Replay, Filter: bulk.Filter{Type: "odd"}},
		bulk.Options{Page: 50, Report: func(bulk.Progress) { reports.Add(1) }})
	require.NoError(t, err)
	assert.Equal(t, int64(n/2), p.Scanned, "the queue filters by type itself")
	assert.Equal(t, int64(n/2), p.Matched)
	assert.Equal(t, int64(n/2), p.Done)
	assert.False(t, p.Running())
	assert.Greater(t, reports.Load(), int64(n/2/50), "progress is reported after each page")
	d.handledOnce(t, n, "odd")
	assert.Equal(t, n/2, d.count(dedupe.Dead), "the even events are still dead")
}

// Two operators (or two replicas) start the same replay at once: each
// matching event is handled once more, not twice.
func TestTheSameReplayTwiceAtOnce(t *testing.T) {
	const n = 400
	d := newDeadStream(t, n)
	job := bulk.Job{Action: bulk.Replay, Filter: bulk.Filter{Type: "odd"}}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := bulk.Run(context.Background(), d.s, job, bulk.Options{Page: 20, Workers: 4})
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	d.handledOnce(t, n, "odd")
}

// A job stopped halfway (here cancelled; a restart or an outage is the
// same) is resumed by starting it again: every event handled once.
func TestAStoppedJobResumes(t *testing.T) {
	const n = 400
	d := newDeadStream(t, n)
	job := bulk.Job{Action: bulk.Replay, Filter: bulk.Filter{Type: "odd"}}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := bulk.Run(ctx, d.s, job, bulk.Options{Page: 20, Workers: 1, Report: func(p bulk.Progress) {
		if p.Done >= 50 {
			cancel()
		}
	}})
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, p.Err, "stopped")
	require.Less(t, p.Done, int64(n/2), "the job stopped before the end")
	p2, err := bulk.Run(context.Background(), d.s, job, bulk.Options{})
	require.NoError(t, err)
	assert.Equal(t, int64(n/2)-p.Done, p2.Matched, "the second run matches only what is left")
	d.handledOnce(t, n, "odd")
}

// A cancel that lands while an action is under way fails that action
// with the context's error; the job still says it was stopped, not that
// the store failed. (It said "claim: context canceled" before.)
func TestACancelDuringAnActionSaysStopped(t *testing.T) {
	const n = 100
	d := newDeadStream(t, n)
	ctx, cancel := context.WithCancel(context.Background())
	target := &cancelling{Target: d.s, cancel: cancel}
	target.after.Store(10)
	job := bulk.Job{Action: bulk.Replay, Filter: bulk.Filter{Type: "odd"}}
	p, err := bulk.Run(ctx, target, job, bulk.Options{Page: 20, Workers: 1})
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, p.Err, "bulk: stopped")
	_, err = bulk.Run(context.Background(), d.s, job, bulk.Options{})
	require.NoError(t, err)
	d.handledOnce(t, n, "odd")
}

// cancelling cancels the job's context inside its after-th replay, which
// then fails as a store call does when its context ends under it.
type cancelling struct {
	bulk.Target
	cancel context.CancelFunc
	after  atomic.Int64
}

func (c *cancelling) Replay(ctx context.Context, key string) error {
	if c.after.Add(-1) == 0 {
		c.cancel()
		return fmt.Errorf("claim %q: %w", key, ctx.Err())
	}
	return c.Target.Replay(ctx, key)
}

// A store that fails mid-job stops the job with the store's error, which
// its progress says; started again, it goes on.
func TestAFailingStoreStopsTheJob(t *testing.T) {
	const n = 200
	d := newDeadStream(t, n)
	flaky := &failing{Target: d.s}
	flaky.after.Store(30)
	job := bulk.Job{Action: bulk.Replay, Filter: bulk.Filter{Type: "odd"}}
	p, err := bulk.Run(context.Background(), flaky, job, bulk.Options{Page: 10, Workers: 2})
	require.ErrorIs(t, err, errOutage)
	assert.Contains(t, p.Err, "store unreachable")
	assert.Less(t, p.Done, int64(n/2))
	flaky.after.Store(1 << 30)
	_, err = bulk.Run(context.Background(), flaky, job, bulk.Options{})
	require.NoError(t, err)
	d.handledOnce(t, n, "odd")
}

var errOutage = errors.New("store unreachable")

type failing struct {
	bulk.Target
	after atomic.Int64 // replays that succeed before the outage
}

func (f *failing) Replay(ctx context.Context, key string) error {
	if f.after.Add(-1) < 0 {
		return errOutage
	}
	return f.Target.Replay(ctx, key)
}

func TestDiscardByFilter(t *testing.T) {
	const n = 200
	d := newDeadStream(t, n)
	p, err := bulk.Run(context.Background(), d.s, bulk.Job{Action: bulk.Discard, Filter: bulk.Filter{Type: "even"}}, bulk.Options{Page: 30})
	require.NoError(t, err)
	assert.Equal(t, int64(n/2), p.Done)
	recs, err := dedupe.Select(context.Background(), d.s, dedupe.Filter{State: dedupe.Dead}, 0, func(dedupe.Record) bool { return true })
	require.NoError(t, err)
	require.Len(t, recs, n/2)
	for _, r := range recs {
		assert.Equal(t, "odd", r.Event.Type)
	}
}

// Starting a job that runs joins it; Jobs keeps its progress after it
// ends; a job that cannot run is refused.
func TestJobs(t *testing.T) {
	const n = 200
	d := newDeadStream(t, n)
	gate := make(chan struct{})
	js := bulk.NewJobs(gated{d.s, gate}, bulk.Options{Page: 10})
	defer js.Close()
	job := bulk.Job{Action: bulk.Replay, Filter: bulk.Filter{Type: "odd"}}
	p1, err := js.Start(job)
	require.NoError(t, err)
	p2, err := js.Start(job)
	require.NoError(t, err)
	assert.Equal(t, p1.ID, p2.ID)
	assert.Equal(t, p1.Started, p2.Started, "the second start joined the first")
	assert.Len(t, js.All(), 1)
	close(gate)
	p, err := js.Wait(context.Background(), p1.ID)
	require.NoError(t, err)
	assert.False(t, p.Running())
	assert.Equal(t, int64(n/2), p.Done)
	got, ok := js.Get(p1.ID)
	assert.True(t, ok)
	assert.Equal(t, p, got)
	_, err = js.Start(bulk.Job{Action: "delete"})
	assert.ErrorIs(t, err, bulk.ErrInvalid)
	d.handledOnce(t, n, "odd")
}

// gated holds every List until gate is closed.
type gated struct {
	bulk.Target
	gate chan struct{}
}

func (g gated) List(ctx context.Context, f dedupe.Filter) ([]dedupe.Record, error) {
	<-g.gate
	return g.Target.List(ctx, f)
}
