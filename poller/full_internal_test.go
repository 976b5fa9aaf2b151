package poller

import (
	"context"
	"fmt"
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
	var mu sync.Mutex
	var waits []time.Duration
	old := sleepFor
	sleepFor = func(ctx context.Context, d time.Duration) bool {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return ctx.Err() == nil
	}
	defer func() { sleepFor = old }()

	p := New("api", FetchFunc(func(context.Context, string) (Page, error) { return Page{}, nil }))
	events := make([]event.Event, 100)
	for i := range events {
		events[i] = event.Event{ID: fmt.Sprint(i)}
	}
	if err := p.deliver(context.Background(), &fullOnce{seen: map[string]bool{}}, events); err != nil {
		t.Fatal(err)
	}
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
