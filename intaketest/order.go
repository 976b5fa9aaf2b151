package intaketest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// Handling is one handling of an ordered event: its order key, its place
// in the key's stored order, and when it began and ended (End zero: its
// process was killed during it).
type Handling struct {
	Key        string
	N          int64
	Start, End time.Time
}

// CheckOrder returns how many handlings began while another of their key
// was under way (overlaps) and how many began after a handling of a later
// event of their key had begun (backwards). A handling whose process was
// killed (End zero) ended with its process: it overlaps nothing.
func CheckOrder(hs []Handling) (overlaps, backwards int) {
	byKey := map[string][]Handling{}
	for _, h := range hs {
		byKey[h.Key] = append(byKey[h.Key], h)
	}
	for _, runs := range byKey {
		slices.SortFunc(runs, func(a, b Handling) int { return a.Start.Compare(b.Start) })
		var lastEnd time.Time
		maxN := int64(-1)
		for _, r := range runs {
			if r.Start.Before(lastEnd) {
				overlaps++
			}
			if r.End.After(lastEnd) {
				lastEnd = r.End
			}
			if r.N < maxN {
				backwards++
			}
			maxN = max(maxN, r.N)
		}
	}
	return overlaps, backwards
}

// OrderVerdict is what an ordering crash test found: handlings recorded,
// overlapping, out of stored order and ended by a kill; the events each
// subscription handled ("all", "latest"); versions applied over a newer
// one, and objects not at their highest version.
type OrderVerdict struct {
	Handlings, Overlaps, Backwards, Killed int
	All, Latest                            int
	Stale, Behind                          int
}

// Check fails t unless every event was handled by "all" (objects × per),
// with no overlap, none out of order, none stale applied and every
// object at its highest version; unordered, unless handlings overlapped
// (the run could not have failed otherwise).
func (v OrderVerdict) Check(t testing.TB, objects, per int, unordered bool) {
	t.Helper()
	switch {
	case unordered && v.Overlaps == 0:
		t.Fatalf("%+v: unordered handlings never overlapped: the run could not have failed", v)
	case !unordered && (v.Overlaps != 0 || v.Backwards != 0 || v.Stale != 0 || v.Behind != 0 || v.All != objects*per):
		t.Fatalf("%+v: want every event handled by all, no overlap, none out of order, none stale applied, every object at its highest version", v)
	}
}

// Record adds a handling read back from a test's table (End zero: its
// process was killed during it) to hs, counting the killed.
func (v *OrderVerdict) Record(hs []Handling, h Handling) []Handling {
	if h.End.IsZero() {
		v.Killed++
	}
	return append(hs, h)
}

// OrderLog records handlings in one process. It is safe for concurrent
// use.
type OrderLog struct {
	mu   sync.Mutex
	runs []Handling
}

// Begin records that a handling of the n-th event of key began; call the
// function it returns when the handling ends.
func (l *OrderLog) Begin(key string, n int) (end func()) {
	l.mu.Lock()
	i := len(l.runs)
	l.runs = append(l.runs, Handling{Key: key, N: int64(n), Start: time.Now()})
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		l.runs[i].End = time.Now()
		l.mu.Unlock()
	}
}

// Verdict returns the handlings recorded and [CheckOrder]'s counts.
func (l *OrderLog) Verdict() (handled, overlaps, backwards int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	overlaps, backwards = CheckOrder(l.runs)
	return len(l.runs), overlaps, backwards
}

// OrderPlan is the workload of the backends' ordering crash tests, the
// same in every process: objects × per events, "o0007-03" the fourth
// event of object o0007 (its order key: [OrderKeyOfID]; its version:
// [VersionOfID]); a quarter arrive first by poll, the rest by webhook;
// 30% arrive a second time by the other path. The webhooks come in an
// order shuffled by rng; the API serves its events in an order shuffled
// with a fixed seed, so that every replica's poller serves the same.
func OrderPlan(objects, per int, rng *rand.Rand) (hooks []string, polled []event.Event) {
	ids := make([]string, objects*per)
	for i := range ids {
		ids[i] = fmt.Sprintf("o%04d-%02d", i/per, i%per)
	}
	hooks, polled = paths(ids)
	rng.Shuffle(len(hooks), func(i, j int) { hooks[i], hooks[j] = hooks[j], hooks[i] })
	fixed := rand.New(rand.NewPCG(1, 2))
	fixed.Shuffle(len(polled), func(i, j int) { polled[i], polled[j] = polled[j], polled[i] })
	return hooks, polled
}

// OrderKeyOfID is an order key function for the suite's events, whose
// ids are "key/n" (or "key-n", [OrderPlan]'s): the key.
func OrderKeyOfID(e event.Event) string {
	k, _, _ := cutOrderID(e.ID)
	return k
}

func cutOrderID(id string) (key, n string, ok bool) {
	if i := strings.LastIndexAny(id, "/-"); i >= 0 {
		return id[:i], id[i+1:], true
	}
	return id, "", false
}

// VersionOfID is a version function for the suite's events: the n of
// "key/n" (or "key-n").
func VersionOfID(e event.Event) (int64, bool) {
	_, n, ok := cutOrderID(e.ID)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(n, 10, 64)
	return v, err == nil
}

// RunOrdered checks that a stream keeps order per object on a queue:
// events of one key handled one at a time in the order they were stored,
// other keys in parallel, a failing event holding its key until it
// succeeds or is dead-lettered, and stale versions skipped. open returns
// n queues over one new, empty store (n holders, as n replicas would
// be); a queue of nil means the stream's in-memory store, for n = 1.
// replicas is how many streams share the store in the first check.
func RunOrdered(t *testing.T, replicas int, open func(t *testing.T, n int) []dedupe.Queue) {
	t.Run("one at a time in stored order", func(t *testing.T) { orderedInOrder(t, replicas, open) })
	t.Run("unordered overlaps", func(t *testing.T) { orderedOverlap(t, open, true) })
	t.Run("ordered waits", func(t *testing.T) { orderedOverlap(t, open, false) })
	t.Run("a key blocks only itself", func(t *testing.T) { orderedBlocksOnlyItself(t, open) })
	t.Run("a failing event holds its key", func(t *testing.T) { orderedRetries(t, open) })
	t.Run("stale versions skipped", func(t *testing.T) { orderedStale(t, open) })
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func orderedStream(q dedupe.Queue, opts ...intake.Option) *intake.Stream {
	opts = append([]intake.Option{intake.WithLogger(quietLog), intake.WithOrderKey(OrderKeyOfID), intake.WithVersion(VersionOfID)}, opts...)
	if q != nil {
		opts = append(opts, intake.WithQueue(q))
	}
	return intake.New(opts...)
}

// runStreams runs each stream until the test ends.
func runStreams(t *testing.T, streams ...*intake.Stream) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Run(ctx); err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, s := range streams {
		select {
		case <-s.Started():
		case <-time.After(30 * time.Second):
			t.Fatal("a stream did not start")
		}
	}
}

func orderedEvent(key string, n int) event.Event {
	return event.Event{Source: "order", ID: key + "/" + strconv.Itoa(n), Type: "t", Payload: []byte(`{}`)}
}

// putRetrying puts e until the stream takes it.
func putRetrying(t *testing.T, s *intake.Stream, e event.Event) {
	for {
		err := s.Put(context.Background(), e)
		if err == nil || errors.Is(err, event.ErrDuplicate) {
			return
		}
		if !errors.Is(err, event.ErrQueueFull) && !errors.Is(err, event.ErrPending) {
			t.Errorf("put %s: %v", e.ID, err)
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func waitCount(t *testing.T, what string, n *atomic.Int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for n.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d after 60 s", what, n.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func orderedInOrder(t *testing.T, replicas int, open func(t *testing.T, n int) []dedupe.Queue) {
	const keys, per = 60, 8
	qs := open(t, replicas)
	var log OrderLog
	var handled atomic.Int64
	seen := sync.Map{}
	streams := make([]*intake.Stream, len(qs))
	for i, q := range qs {
		streams[i] = orderedStream(q)
		streams[i].Handle(func(ctx context.Context, e event.Event) error {
			v, _ := VersionOfID(e)
			end := log.Begin(OrderKeyOfID(e), int(v))
			time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
			end()
			if _, dup := seen.LoadOrStore(e.ID, true); !dup {
				handled.Add(1)
			}
			return nil
		}, intake.WithWorkers(8), intake.WithName("ordered"))
	}
	runStreams(t, streams...)
	// Each key's events are put one after the other, each to a replica
	// at random: stored order is put order. Keys go in parallel.
	var wg sync.WaitGroup
	for k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range per {
				putRetrying(t, streams[rand.IntN(len(streams))], orderedEvent("k"+strconv.Itoa(k), n))
			}
		}()
	}
	wg.Wait()
	waitCount(t, "handled", &handled, keys*per)
	n, overlaps, backwards := log.Verdict()
	t.Logf("%d handlings of %d events over %d keys on %d replicas: %d overlaps, %d out of order", n, keys*per, keys, len(streams), overlaps, backwards)
	if overlaps != 0 || backwards != 0 {
		t.Fatalf("%d handlings overlapped another of their key, %d began after a later event of their key", overlaps, backwards)
	}
}

// orderedOverlap puts two events of one key; the first's handler waits
// for the second's to begin. Unordered, it must; ordered, it must not.
func orderedOverlap(t *testing.T, open func(t *testing.T, n int) []dedupe.Queue, unordered bool) {
	s := orderedStream(open(t, 1)[0])
	second := make(chan struct{})
	var overlapped atomic.Bool
	var handled atomic.Int64
	opts := []intake.SubscribeOption{intake.WithWorkers(4)}
	if unordered {
		opts = append(opts, intake.WithUnordered())
	}
	// Ordered, the second must not begin in 300 ms; unordered, it begins
	// as soon as a worker takes it (10 s: a loaded machine is slow).
	wait := 300 * time.Millisecond
	if unordered {
		wait = 10 * time.Second
	}
	s.Handle(func(ctx context.Context, e event.Event) error {
		defer handled.Add(1)
		if e.ID == "x/1" {
			close(second)
			return nil
		}
		select {
		case <-second:
			overlapped.Store(true)
		case <-time.After(wait):
		}
		return nil
	}, opts...)
	runStreams(t, s)
	putRetrying(t, s, orderedEvent("x", 0))
	putRetrying(t, s, orderedEvent("x", 1))
	waitCount(t, "handled", &handled, 2)
	if overlapped.Load() != unordered {
		t.Fatalf("unordered %v: the second event began during the first: %v", unordered, overlapped.Load())
	}
}

func orderedBlocksOnlyItself(t *testing.T, open func(t *testing.T, n int) []dedupe.Queue) {
	s := orderedStream(open(t, 1)[0])
	release := make(chan struct{})
	var handled atomic.Int64
	otherDone := make(chan struct{})
	s.Handle(func(ctx context.Context, e event.Event) error {
		switch e.ID {
		case "slow/0":
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		case "other/0":
			handled.Add(1)
			close(otherDone)
			return nil
		}
		handled.Add(1)
		return nil
	}, intake.WithWorkers(4))
	runStreams(t, s)
	putRetrying(t, s, orderedEvent("slow", 0))
	putRetrying(t, s, orderedEvent("slow", 1))
	putRetrying(t, s, orderedEvent("other", 0))
	select {
	case <-otherDone:
	case <-time.After(30 * time.Second):
		t.Fatal("another key's event waited for a slow key")
	}
	time.Sleep(50 * time.Millisecond) // a slow/1 handed out wrongly would be counted by now
	if handled.Load() != 1 {
		t.Fatalf("handled %d while the slow key's first event runs, want 1 (the other key's)", handled.Load())
	}
	close(release)
	waitCount(t, "handled", &handled, 3)
}

func orderedRetries(t *testing.T, open func(t *testing.T, n int) []dedupe.Queue) {
	s := orderedStream(open(t, 1)[0])
	var log OrderLog
	var fails atomic.Int64
	var handled atomic.Int64
	var dead atomic.Value
	s.Handle(func(ctx context.Context, e event.Event) error {
		v, _ := VersionOfID(e)
		end := log.Begin(OrderKeyOfID(e), int(v))
		defer end()
		switch e.ID {
		case "a/0": // fails twice, then succeeds
			if fails.Add(1) <= 2 {
				return errors.New("not yet")
			}
		case "b/0": // never succeeds
			return intake.Permanent(errors.New("poison"))
		}
		handled.Add(1)
		return nil
	}, intake.WithWorkers(4), intake.WithRetryBackoff(10*time.Millisecond, 20*time.Millisecond),
		intake.WithDeadLetter(func(_ context.Context, d intake.DeadLetter) { dead.Store(d.Event.ID) }))
	runStreams(t, s)
	for n := range 3 {
		putRetrying(t, s, orderedEvent("a", n))
		putRetrying(t, s, orderedEvent("b", n))
	}
	waitCount(t, "handled", &handled, 5) // a/0..2 and b/1..2
	if got, overlaps, backwards := log.Verdict(); overlaps != 0 || backwards != 0 || got != 8 {
		t.Fatalf("%d handlings (want 8: a/0 three times), %d overlapping, %d out of order", got, overlaps, backwards)
	}
	if dead.Load() != "b/0" {
		t.Fatalf("dead-lettered %v, want b/0", dead.Load())
	}
}

func orderedStale(t *testing.T, open func(t *testing.T, n int) []dedupe.Queue) {
	versionOfMeta := func(e event.Event) (int64, bool) {
		v, err := strconv.ParseInt(e.Meta["v"], 10, 64)
		return v, err == nil
	}
	s := orderedStream(open(t, 1)[0], intake.WithVersion(versionOfMeta))
	var mu sync.Mutex
	var got []string
	var all atomic.Int64
	s.Handle(func(ctx context.Context, e event.Event) error {
		mu.Lock()
		got = append(got, e.ID)
		mu.Unlock()
		return nil
	}, intake.WithSkipStale(), intake.WithName("latest"))
	s.Handle(func(ctx context.Context, e event.Event) error { all.Add(1); return nil }, intake.WithName("all"))
	runStreams(t, s)
	for i, v := range []int{2, 5, 3, 5, 7, 1} {
		e := orderedEvent("v", i)
		e.Meta = map[string]string{"v": strconv.Itoa(v)}
		putRetrying(t, s, e)
	}
	waitCount(t, "handled by the subscription without WithSkipStale", &all, 6)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var stale int64
		for _, st := range s.Stats() {
			stale += st.Stale
		}
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if stale == 2 && n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d stale (want 2), handled %v", stale, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"v/0", "v/1", "v/3", "v/4"}; !slices.Equal(got, want) {
		t.Fatalf("handled %v, want %v (versions 2, 5, 5, 7; 3 and 1 stale)", got, want)
	}
}
