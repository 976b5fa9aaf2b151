package intake_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/leak"
)

// commitLog is a store that remembers when each key was committed.
type commitLog struct {
	dedupe.Store
	mu        sync.Mutex
	committed map[string]time.Time
}

func (c *commitLog) Commit(ctx context.Context, key string, retain time.Duration) error {
	err := c.Store.Commit(ctx, key, retain)
	if err == nil {
		c.mu.Lock()
		if _, ok := c.committed[key]; !ok {
			c.committed[key] = time.Now()
		}
		c.mu.Unlock()
	}
	return err
}

func (c *commitLog) at(key string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.committed[key]
	return t, ok
}

// TestConcurrentPutsRandomAcksAndCancel: 4,800 concurrent puts over 300
// keys into a small queue, two subscriptions that ack, nack (sometimes
// both, in either order) or sit on deliveries at random, and a cancel in
// the middle. Each key is accepted at most once; no event is delivered
// after its key was committed; an event is committed only once each
// subscription acked it; Run returns with no goroutine left.
func TestConcurrentPutsRandomAcksAndCancel(t *testing.T) {
	leak.Check(t)
	store := &commitLog{Store: dedupe.NewMemory(), committed: map[string]time.Time{}}
	s := intake.New(intake.WithLogger(quiet), intake.WithStore(store), intake.WithQueueSize(64),
		intake.WithDrainTimeout(200*time.Millisecond), intake.WithRetryAfter(time.Millisecond))
	type seen struct {
		at time.Time
	}
	var mu sync.Mutex
	deliveries := map[string][]seen{}    // key → deliveries, both subscriptions
	ackedBy := map[string]map[int]bool{} // key → subscriptions that acked it
	var late atomic.Int64
	var consumers sync.WaitGroup
	for i := range 2 {
		ch := s.Subscribe(intake.WithAckTimeout(30*time.Millisecond), intake.WithRetryBackoff(time.Millisecond, 5*time.Millisecond),
			intake.WithName(fmt.Sprint("sub", i)))
		consumers.Add(1)
		go func() {
			defer consumers.Done()
			r := rand.New(rand.NewPCG(uint64(i), 7))
			for d := range ch {
				key := d.Event.Key()
				now := time.Now()
				if at, ok := store.at(key); ok && now.After(at) {
					late.Add(1)
				}
				mu.Lock()
				deliveries[key] = append(deliveries[key], seen{at: now})
				mu.Unlock()
				switch r.IntN(6) {
				case 0, 1, 2:
					mu.Lock()
					if ackedBy[key] == nil {
						ackedBy[key] = map[int]bool{}
					}
					ackedBy[key][i] = true
					mu.Unlock()
					d.Ack()
				case 3:
					d.Nack(errors.New("no"))
				case 4:
					d.Nack(errors.New("no"))
					d.Ack() // ignored: the Nack came first
				case 5:
					// Sit on it: its lease runs out and it is delivered again.
				}
			}
		}()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for errors.Is(s.Put(ctx, event.Event{Source: "probe", ID: "0"}), event.ErrNotRunning) {
		time.Sleep(time.Millisecond)
	}
	var accepted sync.Map // key → count
	var puts sync.WaitGroup
	var put atomic.Int64
	for w := range 48 {
		puts.Add(1)
		go func() {
			defer puts.Done()
			for i := range 100 {
				e := event.Event{Source: "p", ID: fmt.Sprint((w*100 + i) % 300)}
				err := s.Put(context.Background(), e)
				for try := 0; try < 20 && (errors.Is(err, event.ErrQueueFull) || errors.Is(err, event.ErrPending)); try++ {
					time.Sleep(time.Millisecond) // as a provider retries
					err = s.Put(context.Background(), e)
				}
				if err == nil {
					n, _ := accepted.LoadOrStore(e.Key(), new(atomic.Int64))
					n.(*atomic.Int64).Add(1)
				}
				if put.Add(1) == 600 {
					cancel() // shut down in the middle
				}
			}
		}()
	}
	puts.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	consumers.Wait()
	var keys int
	accepted.Range(func(k, v any) bool {
		keys++
		if n := v.(*atomic.Int64).Load(); n != 1 {
			t.Errorf("key %s accepted %d times", k, n)
		}
		return true
	})
	mu.Lock()
	t.Logf("%d keys accepted, %d delivered, %d committed", keys, len(deliveries), len(store.committed))
	mu.Unlock()
	if n := late.Load(); n > 0 {
		t.Errorf("%d deliveries after their key was committed", n)
	}
	mu.Lock()
	defer mu.Unlock()
	for key := range deliveries {
		if _, ok := store.at(key); ok && len(ackedBy[key]) < 2 {
			t.Errorf("key %s committed after %d of 2 subscriptions acked", key, len(ackedBy[key]))
		}
	}
}
