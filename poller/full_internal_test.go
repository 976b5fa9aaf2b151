package poller

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/event"
)

// fullOnce answers each event's first put "queue full", and takes it the
// second time: a queue that frees a slot as soon as the poller looks
// again.
type fullOnce struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (s *fullOnce) Put(_ context.Context, e event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.seen[e.ID] {
		s.seen[e.ID] = true
		return event.ErrQueueFull
	}
	return nil
}

// A wait for a full queue starts again from 1 ms once the queue takes an
// event: it must not keep growing across the page, or a page of 100 events
// that each meet a full queue once would wait seconds instead of 100 ms.
// The waits are recorded, not timed.
func TestFullQueueWaitStartsOverAfterAPut(t *testing.T) {
	recorded := recordWaits(t)
	p := New("api", FetchFunc(func(context.Context, string) (Page, error) { return Page{}, nil }))
	if err := p.deliver(context.Background(), &fullOnce{seen: map[string]bool{}}, numbered(100)); err != nil {
		t.Fatal(err)
	}
	waits := recorded()
	if len(waits) != 100 {
		t.Fatalf("%d waits, want one per event", len(waits))
	}
	var total time.Duration
	for i, d := range waits {
		total += d
		if d > 2*time.Millisecond {
			t.Fatalf("wait %d before a put was %v: the wait kept growing after the queue took the events before it (waits %v)", i, d, waits[:i+1])
		}
	}
	t.Logf("100 waits, %v in all", total)
}

// fullThenFree refuses its first PutMany whole ("queue full") and takes
// everything after: a queue that drains while the poller waits.
type fullThenFree struct {
	mu    sync.Mutex
	calls int
	taken int
}

func (s *fullThenFree) Put(_ context.Context, e event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls == 1 {
		return event.ErrQueueFull
	}
	s.taken++
	return nil
}

func (s *fullThenFree) PutMany(ctx context.Context, es []event.Event) []error {
	errs := make([]error, len(es))
	for i, e := range es {
		if i == 0 {
			errs[i] = s.Put(ctx, e)
			continue
		}
		s.mu.Lock()
		if s.calls == 1 {
			errs[i] = event.ErrQueueFull // the same refusal for the rest of the page
		} else {
			s.taken++
		}
		s.mu.Unlock()
	}
	return errs
}

// A page that meets a full queue waits once, then puts what is left at
// once: it must not wait once per event (100 events each waiting a
// millisecond or more made the load harness's poller drain a backlog at
// 20,000–50,000 events/s in some runs instead of 200,000).
func TestFullPageWaitsOncePerRefusal(t *testing.T) {
	recorded := recordWaits(t)
	p := New("api", FetchFunc(func(context.Context, string) (Page, error) { return Page{}, nil }))
	sink := &fullThenFree{}
	if err := p.deliver(context.Background(), sink, numbered(100)); err != nil {
		t.Fatal(err)
	}
	waits := len(recorded())
	if sink.taken != 100 {
		t.Fatalf("%d events stored, want 100", sink.taken)
	}
	if waits != 1 {
		t.Fatalf("%d waits for one refusal of the page, want 1", waits)
	}
}

// recordWaits makes the poller's waits return at once, recording each
// (until the test ends), and returns a function that reads them.
func recordWaits(t *testing.T) func() []time.Duration {
	var mu sync.Mutex
	var waits []time.Duration
	old := sleepFor
	sleepFor = func(ctx context.Context, d time.Duration) bool {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return ctx.Err() == nil
	}
	t.Cleanup(func() { sleepFor = old })
	return func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(waits)
	}
}

// numbered returns n events with the IDs "0" to n-1.
func numbered(n int) []event.Event {
	events := make([]event.Event, n)
	for i := range events {
		events[i] = event.Event{ID: fmt.Sprint(i)}
	}
	return events
}
