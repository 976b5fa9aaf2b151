package intake_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/leak"
	"github.com/intakehq/intake/poller"
)

// pingStore is a memory store whose Ping fails while down is set.
type pingStore struct {
	*dedupe.Memory
	down atomic.Bool
}

func (p *pingStore) Ping(context.Context) error {
	if p.down.Load() {
		return errors.New("connection refused")
	}
	return nil
}

func readiness(t *testing.T, h http.Handler) (int, intake.Health) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var got intake.Health
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got), rec.Body.String())
	return rec.Code, got
}

// Readiness follows the store: not ready within one check interval of an
// outage, ready again after it; it lists each source's last success and
// last error, and the queue against its capacity.
func TestHealthFollowsTheStore(t *testing.T) {
	leak.Check(t)
	store := &pingStore{Memory: dedupe.NewMemory()}
	s := intake.New(intake.WithLogger(quiet), intake.WithStore(store), intake.WithHealthInterval(20*time.Millisecond),
		intake.WithQueueSize(2))
	var fail atomic.Bool
	p := poller.New("api", poller.FetchFunc(func(ctx context.Context, cursor string) (poller.Page, error) {
		if fail.Load() {
			return poller.Page{}, errors.New("api down")
		}
		return poller.Page{}, nil
	}), poller.Every(10*time.Millisecond), poller.WithBackoff(10*time.Millisecond, 10*time.Millisecond), poller.WithLogger(quiet))
	s.Add(p)
	ch := s.Subscribe(intake.WithSources("p"))
	h := s.HealthHandler()

	code, got := readiness(t, h)
	assert.Equal(t, http.StatusServiceUnavailable, code, "not running yet")
	assert.False(t, got.Running)

	stop := run(t, s)
	require.Eventually(t, func() bool { c, _ := readiness(t, h); return c == http.StatusOK }, 30*time.Second, 5*time.Millisecond)
	require.Eventually(t, func() bool { return !s.Health().Sources[0].LastSuccess.IsZero() }, 30*time.Second, 5*time.Millisecond)

	store.down.Store(true)
	fail.Store(true)
	start := time.Now()
	require.Eventually(t, func() bool { return !s.Health().Ready }, 30*time.Second, time.Millisecond)
	// Checks every 20 ms: not ready within a few of them, well before the
	// default interval (2 s) would have seen it. (A bound of 200 ms could
	// fail on a loaded machine.)
	assert.Less(t, time.Since(start), time.Second, "not ready within a few check intervals")
	code, got = readiness(t, h)
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Contains(t, got.Store, "connection refused")
	require.Eventually(t, func() bool { return s.Health().Sources[0].Err != "" }, 30*time.Second, time.Millisecond)
	assert.Equal(t, "api", s.Health().Sources[0].Name)
	assert.Contains(t, s.Health().Sources[0].Err, "api down")

	store.down.Store(false)
	require.Eventually(t, func() bool { return s.Health().Ready }, 30*time.Second, time.Millisecond)

	// A full queue is not ready either: traffic should go elsewhere.
	for _, id := range []string{"1", "2"} {
		require.Eventually(t, func() bool { return s.Put(context.Background(), event.Event{Source: "p", ID: id}) == nil },
			time.Second, time.Millisecond)
	}
	got = s.Health()
	assert.False(t, got.Ready)
	assert.Equal(t, 2, got.QueueDepth)
	assert.Equal(t, 2, got.QueueCapacity)
	(<-ch).Ack()
	(<-ch).Ack()
	require.Eventually(t, func() bool { return s.Health().Ready }, 30*time.Second, time.Millisecond)
	require.NoError(t, stop())
	assert.False(t, s.Health().Ready, "stopped")
}

// Health.Oldest is the age of the oldest event held: the first admitted
// of those not yet committed, whichever finishes first.
func TestHealthOldestFollowsTheQueue(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet))
	release := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{}), "c": make(chan struct{})}
	s.Handle(func(ctx context.Context, e event.Event) error {
		<-release[e.ID]
		return nil
	}, intake.WithWorkers(3))
	run(t, s)
	ctx := context.Background()
	assert.Zero(t, s.Health().Oldest, "nothing held")
	put := func(id string) (before, after time.Time) {
		before = time.Now()
		require.NoError(t, s.Put(ctx, event.Event{Source: "shop", ID: id}))
		return before, time.Now()
	}
	_, afterA := put("a")
	time.Sleep(30 * time.Millisecond)
	_, afterB := put("b")
	time.Sleep(30 * time.Millisecond)
	beforeC, _ := put("c")

	// A bound from below takes the time before Health; from above, after.
	now := time.Now()
	h := s.Health()
	assert.GreaterOrEqual(t, h.Oldest, now.Sub(afterA), "a is the oldest")
	close(release["b"]) // a middle one done: a is still the oldest
	require.Eventually(t, func() bool { return s.Health().QueueDepth == 2 }, 5*time.Second, time.Millisecond)
	now = time.Now()
	h = s.Health()
	assert.GreaterOrEqual(t, h.Oldest, now.Sub(afterA), "a is still the oldest")
	close(release["a"]) // the oldest done: c is
	require.Eventually(t, func() bool { return s.Health().QueueDepth == 1 }, 5*time.Second, time.Millisecond)
	h, now = s.Health(), time.Now()
	assert.LessOrEqual(t, h.Oldest, now.Sub(beforeC), "c's age, not a's or b's")
	assert.Less(t, h.Oldest, now.Sub(afterB), "younger than b")
	close(release["c"])
	require.Eventually(t, func() bool { return s.Health().Oldest == 0 }, 5*time.Second, time.Millisecond)
}

// BenchmarkHealthHeld is the cost of Health with 10,000 events held (a
// full default queue): what a probe or the console pays per call.
func BenchmarkHealthHeld(b *testing.B) {
	s := intake.New(intake.WithLogger(quiet))
	hold := make(chan struct{})
	s.Handle(func(ctx context.Context, e event.Event) error { <-hold; return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { close(hold); cancel(); <-done }()
	<-s.Started()
	for i := range 10_000 {
		if err := s.Put(ctx, event.Event{Source: "shop", ID: fmt.Sprint(i)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if s.Health().Oldest == 0 {
			b.Fatal("nothing held")
		}
	}
}
