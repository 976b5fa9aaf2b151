package alert

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// recorder keeps the alerts a hook got.
type recorder struct {
	mu sync.Mutex
	as []Alert
}

func (r *recorder) hook(_ context.Context, a Alert) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.as = append(r.as, a)
}

func (r *recorder) got() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Alert(nil), r.as...)
}

// expect checks that the alerts so far are exactly these crossings.
func (r *recorder) expect(t *testing.T, want ...bool) {
	t.Helper()
	got := r.got()
	if len(got) != len(want) {
		t.Fatalf("alerts %v, want %d crossings %v", got, len(want), want)
	}
	for i, f := range want {
		if got[i].Firing != f {
			t.Fatalf("alert %d: %v, want firing=%v", i, got[i], f)
		}
	}
}

func run(t *testing.T, s *intake.Stream) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-s.Started()
}

func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func put(t *testing.T, s *intake.Stream, n int, prefix string) {
	t.Helper()
	for i := range n {
		e := event.Event{Source: "shop", ID: prefix + string(rune('a'+i%26)) + string(rune('a'+i/26))}
		until(t, "event stored", func() bool { return s.Put(context.Background(), e) == nil })
	}
}

func TestQueueDepthFiresOnceAndRecoversOnce(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet))
	gate := make(chan struct{})
	s.Handle(func(context.Context, event.Event) error { <-gate; return nil }, intake.WithWorkers(2))
	run(t, s)
	var r recorder
	w := New(s, r.hook, QueueDepth(10))
	w.log = quiet
	w.Check(context.Background())
	r.expect(t) // nothing queued
	put(t, s, 20, "q")
	w.Check(context.Background())
	w.Check(context.Background())
	r.expect(t, true)
	if a := r.got()[0]; a.Rule != "queue-depth" || a.Value != 20 || a.Above != 10 {
		t.Fatalf("%+v", a)
	}
	close(gate)
	until(t, "drained", func() bool { return s.Health().QueueDepth == 0 })
	w.Check(context.Background())
	w.Check(context.Background())
	r.expect(t, true, false)
}

func TestDeadLettersPerWindow(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet))
	s.Handle(func(context.Context, event.Event) error { return errors.New("downstream 500") }, intake.WithMaxAttempts(1))
	run(t, s)
	var r recorder
	now := time.Now()
	w := New(s, r.hook, DeadLetters(10, time.Minute))
	w.log, w.now = quiet, func() time.Time { return now }
	w.Check(context.Background())
	put(t, s, 30, "d")
	until(t, "30 dead", func() bool { return total(s.Stats(), func(st intake.SourceStats) int64 { return st.Dead }) == 30 })
	now = now.Add(time.Minute)
	w.Check(context.Background())
	r.expect(t, true) // 30 a minute
	now = now.Add(time.Minute)
	w.Check(context.Background())
	r.expect(t, true, false) // none in the next
}

// pingStore is the in-memory store with a Ping that fails on demand.
type pingStore struct {
	dedupe.Store
	down atomic.Bool
}

func (p *pingStore) Ping(context.Context) error {
	if p.down.Load() {
		return errors.New("dial tcp 127.0.0.1:5432: connection refused")
	}
	return nil
}

func TestStoreDownAndBack(t *testing.T) {
	store := &pingStore{Store: dedupe.NewMemory()}
	s := intake.New(intake.WithLogger(quiet), intake.WithStore(store), intake.WithHealthInterval(5*time.Millisecond))
	s.Handle(func(context.Context, event.Event) error { return nil })
	run(t, s)
	var r recorder
	w := New(s, r.hook, StoreDown())
	w.log = quiet
	until(t, "first check", func() bool { return s.Health().Store == "ok" })
	w.Check(context.Background())
	r.expect(t)
	store.down.Store(true)
	until(t, "store down", func() bool { return s.Health().Store != "ok" })
	w.Check(context.Background())
	w.Check(context.Background())
	r.expect(t, true)
	store.down.Store(false)
	until(t, "store back", func() bool { return s.Health().Store == "ok" })
	w.Check(context.Background())
	r.expect(t, true, false)
}

func TestSilentSource(t *testing.T) {
	var fail atomic.Bool
	p := poller.New("stripe", poller.FetchFunc(func(context.Context, string) (poller.Page, error) {
		if fail.Load() {
			return poller.Page{}, errors.New("502")
		}
		return poller.Page{}, nil
	}), poller.Every(5*time.Millisecond), poller.WithBackoff(time.Millisecond, 5*time.Millisecond), poller.WithLogger(quiet))
	s := intake.New(intake.WithLogger(quiet))
	s.Add(p)
	s.Handle(func(context.Context, event.Event) error { return nil })
	run(t, s)
	var r recorder
	now := time.Now()
	w := New(s, r.hook, Silent("stripe", 15*time.Minute))
	w.log, w.now = quiet, func() time.Time { return now }
	until(t, "a poll", func() bool { return !p.Status().LastSuccess.IsZero() })
	w.Check(context.Background())
	r.expect(t)
	fail.Store(true)
	time.Sleep(50 * time.Millisecond) // polls fail; the last success stays where it was
	now = time.Now().Add(16 * time.Minute)
	w.Check(context.Background())
	r.expect(t, true)
	fail.Store(false)
	back := time.Now()
	until(t, "a poll succeeds again", func() bool { return p.Status().LastSuccess.After(back) })
	now = time.Now()
	w.Check(context.Background())
	r.expect(t, true, false)
}

func TestRejected(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet), intake.WithQueueSize(1))
	gate := make(chan struct{})
	s.Handle(func(context.Context, event.Event) error { <-gate; return nil })
	run(t, s)
	defer close(gate)
	var r recorder
	now := time.Now()
	w := New(s, r.hook, Rejected("shop", "full", 5, time.Minute))
	w.log, w.now = quiet, func() time.Time { return now }
	w.Check(context.Background())
	for i := range 20 {
		_ = s.Put(context.Background(), event.Event{Source: "shop", ID: string(rune('a' + i))}) // one fits, the rest are refused: full
	}
	now = now.Add(time.Minute)
	w.Check(context.Background())
	r.expect(t, true)
	now = now.Add(time.Minute)
	w.Check(context.Background())
	r.expect(t, true, false)
}

func TestNonsenseRulesPanic(t *testing.T) {
	for name, fn := range map[string]func(){
		"no name": func() {
			New(intake.New(), func(context.Context, Alert) {}, Rule{Value: func(Sample) float64 { return 0 }})
		},
		"twice":       func() { New(intake.New(), func(context.Context, Alert) {}, QueueDepth(1), QueueDepth(2)) },
		"nil hook":    func() { New(intake.New(), nil) },
		"zero window": func() { DeadLetters(1, 0) },
		"zero rate":   func() { FailureRate("shop", 1, 0) },
		"zero every":  func() { New(intake.New(), func(context.Context, Alert) {}).Every(0) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

func TestFailingFiresOnceAndRecoversOnce(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet))
	var down atomic.Bool
	down.Store(true)
	s.Handle(func(context.Context, event.Event) error {
		if down.Load() {
			return errors.New("downstream 500")
		}
		return nil
	}, intake.WithName("billing"), intake.WithRetryBackoff(time.Millisecond, 2*time.Millisecond))
	run(t, s)
	var r recorder
	w := New(s, r.hook, Failing("billing", 5))
	w.log = quiet
	w.Check(context.Background())
	r.expect(t)
	put(t, s, 1, "f")
	until(t, "failing 6 in a row", func() bool { return s.Health().Failing["billing"] > 5 })
	w.Check(context.Background())
	w.Check(context.Background())
	r.expect(t, true)
	down.Store(false)
	until(t, "acked", func() bool { return s.Health().Failing["billing"] == 0 })
	w.Check(context.Background())
	w.Check(context.Background())
	r.expect(t, true, false)
}

func TestFailureRatePerWindow(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet))
	s.Handle(func(context.Context, event.Event) error { return errors.New("downstream 500") }, intake.WithMaxAttempts(1))
	run(t, s)
	var r recorder
	now := time.Now()
	w := New(s, r.hook, FailureRate("shop", 10, time.Minute))
	w.log, w.now = quiet, func() time.Time { return now }
	w.Check(context.Background())
	put(t, s, 30, "r")
	until(t, "30 failed", func() bool { return total(s.Stats(), func(st intake.SourceStats) int64 { return st.Failed }) == 30 })
	now = now.Add(time.Minute)
	w.Check(context.Background())
	r.expect(t, true) // 30 a minute
	now = now.Add(time.Minute)
	w.Check(context.Background())
	r.expect(t, true, false) // none in the next
}

func TestOldestAgeFiresOnceAndRecoversOnce(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet))
	gate := make(chan struct{})
	s.Handle(func(context.Context, event.Event) error { <-gate; return nil })
	run(t, s)
	var r recorder
	w := New(s, r.hook, OldestAge(50*time.Millisecond))
	w.log = quiet
	w.Check(context.Background())
	r.expect(t)
	put(t, s, 1, "o")
	until(t, "older than 50 ms", func() bool { return s.Health().Oldest > 50*time.Millisecond })
	w.Check(context.Background())
	w.Check(context.Background())
	r.expect(t, true)
	close(gate)
	until(t, "committed", func() bool { return s.Health().QueueDepth == 0 })
	w.Check(context.Background())
	r.expect(t, true, false)
}
