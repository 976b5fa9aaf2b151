package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
)

// TestOrdered: streams on two replicas sharing one Postgres queue keep
// order per object between them (intaketest.RunOrdered).
func TestOrdered(t *testing.T) {
	pool := testPool(t)
	intaketest.RunOrdered(t, 2, func(t *testing.T, n int) []dedupe.Queue {
		prefix := testPrefix(t, pool)
		qs := make([]dedupe.Queue, n)
		for i := range qs {
			qs[i] = newBackend(t, pool, prefix)
		}
		return qs
	})
}

// TestLargePageOfOrderedEvents: a page of 20,000 events about as many
// objects, stored by several callers at once, fits the server's lock
// table. (Locking every order key of a page in one statement ran the
// lock table out: "out of shared memory".)
func TestLargePageOfOrderedEvents(t *testing.T) {
	pool := testPool(t)
	b := newBackend(t, pool, testPrefix(t, pool))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var keys []string
			var evs []event.Event
			for i := range 2500 {
				e := event.Event{Source: "s", ID: fmt.Sprintf("%d-%d", w, i), Meta: map[string]string{event.MetaOrder: fmt.Sprintf("obj-%d-%d", w, i)}}
				keys, evs = append(keys, e.Key()), append(evs, e)
			}
			_, es := b.EnqueueMany(context.Background(), keys, evs, time.Minute)
			for _, err := range es {
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
