package intaketest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
)

// EffectsPlan is the workload of the backends' effects crash tests, the
// same in every process: n unique events; a quarter arrive first by
// poll, the rest by webhook; 30% arrive a second time by the other path.
// It returns the ids to send as webhooks and the events the API serves
// to the poller, in order.
func EffectsPlan(n int) (hooks []string, polled []event.Event) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("evt_%05d", i)
	}
	return paths(ids)
}

// paths sends the i-th id first by poll when i%4 == 0, else by webhook,
// and by the other path too when i%10 < 3.
func paths(ids []string) (hooks []string, polled []event.Event) {
	for i, id := range ids {
		first := event.Webhook
		if i%4 == 0 {
			first = event.Poll
		}
		both := i%10 < 3
		if first == event.Webhook || both {
			hooks = append(hooks, id)
		}
		if first == event.Poll || both {
			polled = append(polled, event.Event{ID: id, Type: "t", Payload: []byte(`{"id":"` + id + `"}`)})
		}
	}
	return hooks, polled
}

// PageFetch serves events in pages of size, the cursor being an index.
func PageFetch(events []event.Event, size int) poller.FetchFunc {
	return func(ctx context.Context, cursor string) (poller.Page, error) {
		from := 0
		fmt.Sscan(cursor, &from)
		if from >= len(events) {
			return poller.Page{}, nil
		}
		to := min(from+size, len(events))
		return poller.Page{Events: events[from:to], Next: fmt.Sprint(to), More: to < len(events)}, nil
	}
}

// KillDuringProgress runs a crash schedule: kills calls of kill, at
// random points (drawn from rng) spread over total units of progress
// (stored: the webhooks acknowledged so far), each once the handlers
// are writing (rows grew by 100, two seconds at most: the last kills may
// find everything handled), so that every kill finds work in flight and
// every restart makes progress however slow the machine. It returns
// early points at once once sent is closed.
func KillDuringProgress(rng *rand.Rand, kills int, total int64, stored func() int64, sent <-chan struct{}, rows func() int, kill func()) {
	for k := range kills {
		at := int64((float64(k) + rng.Float64()) * float64(total) / float64(kills+1))
		for stored() < at && !closed(sent) {
			time.Sleep(5 * time.Millisecond)
		}
		for base, until := rows(), time.Now().Add(2*time.Second); rows() < base+100 && time.Now().Before(until); {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		kill()
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Sending is a provider sending webhooks: each is sent until send
// reports it stored, by a number of senders at once.
type Sending struct {
	Stored atomic.Int64  // sends that ended, stored or given up
	Failed atomic.Int64  // sends given up on
	Done   chan struct{} // closed when every send has ended
}

// SendAll sends the webhooks 0 to n-1 with send, by senders goroutines,
// and returns at once.
func SendAll(n, senders int, send func(i int) bool) *Sending {
	s := &Sending{Done: make(chan struct{})}
	work := make(chan int)
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if !send(i) {
					s.Failed.Add(1)
				}
				s.Stored.Add(1)
			}
		}()
	}
	go func() {
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
		close(s.Done)
	}()
	return s
}

// EffectsVerdict fails t when an effects crash run with acks of kind ack
// ("plain", or a transactional one) left an event without its row, a
// transactional one left a duplicate, or a plain one none (the run then
// did not reach the crash window, and could not have failed).
func EffectsVerdict(t testing.TB, ack string, missing, dups int) {
	t.Helper()
	switch {
	case missing > 0:
		t.Errorf("%d events without a row", missing)
	case ack != "plain" && dups > 0:
		t.Errorf("%d duplicate rows with transactional acks (%s)", dups, ack)
	case ack == "plain" && dups == 0:
		t.Errorf("no duplicate row with plain acks: the run did not test the crash window")
	}
}
