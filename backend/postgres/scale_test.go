package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
	"github.com/intakehq/intake/internal/testenv"
)

// slowCommits is a backend whose first commits take 6 s each: a commit
// path slower than any lease, as a backlog's renewals once made it.
type slowCommits struct {
	*postgres.Backend
	slow atomic.Int64
}

func (s *slowCommits) CommitMany(ctx context.Context, keys []string, retain time.Duration) error {
	if s.slow.Add(1) <= 3 {
		time.Sleep(6 * time.Second)
	}
	return s.Backend.CommitMany(ctx, keys, retain)
}

// TestManyHeldEventsSlowCommits: replica A holds 100,000 events (20,000
// under -short) whose commits are slow at first and whose claim leases
// (1 s) run out many times meanwhile; replica B, with the defaults, looks
// for orphans every second. B takes nothing from the live A, and every
// event is handled once. Renewing A's claims costs the same at 1,000 and
// 100,000 keys.
func TestManyHeldEventsSlowCommits(t *testing.T) {
	testenv.SkipUnlessLong(t)
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	total := 100_000
	if testing.Short() || raceEnabled {
		total = 20_000 // the race detector makes 100,000 take minutes
	}
	var mu sync.Mutex
	handled := make(map[string]int, total)
	var byB atomic.Int64
	var all sync.WaitGroup
	all.Add(total)
	record := func(b bool) func(context.Context, event.Event) error {
		return func(ctx context.Context, e event.Event) error {
			mu.Lock()
			handled[e.ID]++
			first := handled[e.ID] == 1
			mu.Unlock()
			if b {
				byB.Add(1)
			}
			if first {
				all.Done()
			}
			return nil
		}
	}
	aBackend := &slowCommits{Backend: newBackend(t, pool, prefix)}
	a := intake.New(intake.WithQueue(aBackend), intake.WithClaimLease(time.Second), intake.WithQueueSize(total+1000),
		intake.WithLogger(quiet))
	a.Handle(record(false), intake.WithWorkers(8))
	b := intake.New(intake.WithQueue(newBackend(t, pool, prefix)), intake.WithLogger(quiet))
	b.Handle(record(true))
	ctx, cancel := context.WithCancel(context.Background())
	adone, bdone := make(chan error, 1), make(chan error, 1)
	go func() { adone <- a.Run(ctx) }()
	go func() { bdone <- b.Run(ctx) }()
	defer func() {
		cancel()
		<-adone
		<-bdone
	}()
	if err := intaketest.Put(ctx, a, event.Event{Source: "warm", ID: "up"}); err != nil {
		t.Fatal(err)
	}
	all.Add(1) // the warm-up event
	start := time.Now()
	for from := 0; from < total; from += 1000 {
		page := make([]event.Event, 0, 1000)
		for i := from; i < min(from+1000, total); i++ {
			page = append(page, event.Event{Source: "backlog", ID: fmt.Sprint(i), Payload: []byte(`{"n":1}`)})
		}
		for i, err := range a.PutMany(ctx, page) {
			if err != nil {
				t.Fatalf("put %s: %v", page[i].ID, err)
			}
		}
	}
	t.Logf("%d events stored in %v", total, time.Since(start).Round(time.Millisecond))

	// Renewal at 1,000 and at all the keys held.
	keys := make([]string, total)
	for i := range keys {
		keys[i] = event.Key("backlog", fmt.Sprint(i))
	}
	for _, n := range []int{1000, total} {
		t0 := time.Now()
		if err := aBackend.Extend(ctx, keys[:n], time.Second); err != nil {
			t.Fatal(err)
		}
		t.Logf("renewing %d claims took %v", n, time.Since(t0))
	}

	waited := make(chan struct{})
	go func() { all.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Minute):
		t.Fatal("not every event handled in 5 minutes")
	}
	time.Sleep(2 * time.Second) // B looks twice more
	mu.Lock()
	defer mu.Unlock()
	twice := 0
	for _, n := range handled {
		if n > 1 {
			twice++
		}
	}
	t.Logf("%d events handled in %v; %d by replica B, %d twice", len(handled), time.Since(start).Round(time.Millisecond), byB.Load(), twice)
	if twice != 0 || byB.Load() != 0 {
		t.Fatalf("%d events handled twice, %d taken by B from a live holder", twice, byB.Load())
	}
}
