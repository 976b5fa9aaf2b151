package intake_test

import (
	"context"
	"fmt"
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
)

// countingQueue records the size of every Adopt it is asked for.
type countingQueue struct {
	*fakeQueue
	mu    sync.Mutex
	asked []int
}

func (q *countingQueue) Adopt(ctx context.Context, n int, lease time.Duration) ([]dedupe.Stored, error) {
	q.mu.Lock()
	q.asked = append(q.asked, n)
	q.mu.Unlock()
	return q.fakeQueue.Adopt(ctx, n, lease)
}

// Issue #22, item 2: a stream restarted on a backlog larger than its queue
// keeps the queue fed: it adopts in batches worth a statement (a quarter
// of the queue here) as soon as the subscribers free room for one, never a
// few events at a time, and it is not paced by its one-second timer.
func TestAdopterKeepsTheQueueFed(t *testing.T) {
	leak.Check(t)
	const backlog, size = 5000, 1000
	q := &countingQueue{fakeQueue: newFakeQueue()}
	past := time.Now().Add(-time.Hour)
	for i := range backlog { // given back by a stream that stopped
		key := event.Key("api", fmt.Sprint(i))
		q.rows[key] = &fakeRow{e: event.Event{Source: "api", ID: fmt.Sprint(i)}, state: dedupe.Pending, expires: past, seq: i, queued: true}
	}
	s := intake.New(intake.WithLogger(quiet), intake.WithQueue(q), intake.WithQueueSize(size))
	var handled atomic.Int64
	s.Handle(func(context.Context, event.Event) error { handled.Add(1); return nil }, intake.WithWorkers(8))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	require.Eventually(t, func() bool { return handled.Load() == backlog }, 30*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)

	q.mu.Lock()
	defer q.mu.Unlock()
	small := 0
	for _, n := range q.asked {
		if n < size/4 {
			small++
		}
	}
	assert.Zero(t, small, "adoptions asked for fewer than a batch (%d): %v", size/4, q.asked)
}
