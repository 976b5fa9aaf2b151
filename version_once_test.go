package intake_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// versionedQueue is a fakeQueue that keeps versions and counts the saves
// made outside a transaction (SaveVersion): a transactional ack records
// the version in its own transaction instead.
type versionedQueue struct {
	*fakeQueue
	mu    sync.Mutex
	saves int
	last  map[string]int64
}

func (q *versionedQueue) LastVersions(_ context.Context, sub string, keys []string) (map[string]int64, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := map[string]int64{}
	for _, k := range keys {
		if v, ok := q.last[sub+"/"+k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

func (q *versionedQueue) SaveVersion(_ context.Context, sub, key string, v int64, _ time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.saves++
	if v > q.last[sub+"/"+key] {
		q.last[sub+"/"+key] = v
	}
	return nil
}

// A version recorded by a transactional ack (the backend asked the
// delivery for it, dedupe.VersionedDelivery) is not written again by the
// stream after the handler; a plain handler's is written once.
func TestVersionRecordedOnce(t *testing.T) {
	for _, tc := range []struct {
		name      string
		inTx      bool
		wantSaves int
	}{
		{"transactional ack", true, 0},
		{"plain ack", false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &versionedQueue{fakeQueue: newFakeQueue(), last: map[string]int64{}}
			s := intake.New(intake.WithLogger(quiet), intake.WithQueue(q),
				intake.WithOrderKey(func(e event.Event) string { return "obj" }),
				intake.WithVersion(func(e event.Event) (int64, bool) { return int64(len(e.ID)), true }))
			var mu sync.Mutex
			var handled []string
			s.Handle(func(ctx context.Context, e event.Event) error {
				if tc.inTx {
					d, ok := dedupe.DeliveryFromContext(ctx)
					require.True(t, ok)
					_, v, _, ok := d.(dedupe.VersionedDelivery).Version() // as a backend's AckTx does, in its transaction
					require.True(t, ok)
					require.Equal(t, int64(len(e.ID)), v)
				}
				mu.Lock()
				handled = append(handled, e.ID)
				mu.Unlock()
				return nil
			}, intake.WithName("latest"), intake.WithSkipStale())
			run(t, s)
			for _, id := range []string{"a", "bb", "ccc"} {
				require.NoError(t, s.Put(context.Background(), event.Event{Source: "shop", ID: id}))
				require.Eventually(t, func() bool {
					mu.Lock()
					defer mu.Unlock()
					return len(handled) > 0 && handled[len(handled)-1] == id
				}, 5*time.Second, time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
			q.mu.Lock()
			defer q.mu.Unlock()
			assert.Equal(t, tc.wantSaves, q.saves, "versions written after the handler")
		})
	}
}

// A recorded version is kept for the retention after its last use, then
// forgotten: an older version arriving after that is handled (in memory
// here; the SQL backends' version tables are cleaned by the same rule).
func TestVersionKeptForTheRetention(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet), intake.WithRetention(200*time.Millisecond),
		intake.WithOrderKey(func(e event.Event) string { return "obj" }),
		intake.WithVersion(func(e event.Event) (int64, bool) { return int64(len(e.ID)), true }))
	handled := make(chan string, 10)
	s.Handle(func(ctx context.Context, e event.Event) error { handled <- e.ID; return nil }, intake.WithSkipStale())
	run(t, s)
	put := func(id string) {
		t.Helper()
		require.NoError(t, s.Put(context.Background(), event.Event{Source: "shop", ID: id}))
	}
	next := func() string {
		select {
		case id := <-handled:
			return id
		case <-time.After(5 * time.Second):
			return ""
		}
	}
	put("ccc") // version 3
	require.Equal(t, "ccc", next())
	put("a") // version 1, within the retention: stale, skipped
	require.Eventually(t, func() bool { return s.Stats()[0].Stale == 1 }, 5*time.Second, time.Millisecond)
	select {
	case id := <-handled:
		t.Fatalf("stale %s handled", id)
	default:
	}
	time.Sleep(400 * time.Millisecond) // the retention has passed (and the key's done mark with it)
	put("bb")                          // version 2: the recorded 3 is forgotten
	assert.Equal(t, "bb", next())
}
