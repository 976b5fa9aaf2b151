package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/bulk"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/testenv"
)

// TestBulkReplayOnPostgres: 100,000 dead letters (10,000 unless
// INTAKE_LONG=1, and under -race), half of type "a"; two replicas start the same bulk replay of
// type "a" at once. Every "a" is handled exactly once more, no "b" is, and
// the test reports the rate and the memory it took.
func TestBulkReplayOnPostgres(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	total := 10_000
	if testenv.Long() && !raceEnabled {
		total = 100_000
	}
	ctx := context.Background()
	filler := newBackend(t, pool, prefix)
	payload := []byte(`{"object":"invoice","amount_due":4200,"currency":"usd","lines":"` + strings.Repeat("x", 960) + `"}`)
	setup := time.Now()
	const batch = 1000
	var keys []string
	for i := 0; i < total; i += batch {
		var ks []string
		var evs []event.Event
		for j := i; j < min(i+batch, total); j++ {
			e := event.Event{Source: "billing", ID: fmt.Sprint(j), Type: []string{"a", "b"}[j%2], Payload: payload}
			ks, evs = append(ks, e.Key()), append(evs, e)
		}
		states, errs := filler.EnqueueMany(ctx, ks, evs, time.Hour)
		for k := range ks {
			require.NoError(t, errs[k])
			require.Equal(t, dedupe.Claimed, states[k])
		}
		keys = append(keys, ks...)
	}
	// Each buried as Bury would (its statement, over every row at once:
	// 100,000 Bury calls would take a minute of the test).
	now := time.Now()
	failure, _ := json.Marshal(dedupe.Failure{Err: "ledger said 503", Attempts: 30, First: now.Add(-27 * time.Hour), Last: now, Subscription: "ledger"})
	tag, err := pool.Exec(ctx, `UPDATE `+prefix+`keys SET state = 3, expires_at = now() + interval '1 day', holder = NULL, attempts = 30, failure = $1 WHERE seq IS NOT NULL`, failure)
	require.NoError(t, err)
	require.Equal(t, int64(total), tag.RowsAffected())
	one, err := filler.Get(ctx, keys[0])
	require.NoError(t, err)
	require.Equal(t, dedupe.Dead, one.State)
	require.Equal(t, "ledger said 503", one.Failure.Err)
	t.Logf("setup: %d dead letters in %v", total, time.Since(setup).Round(time.Millisecond))

	var mu sync.Mutex
	handled := make(map[string]int, total/2)
	all := make(chan struct{})
	replica := func() *intake.Stream {
		s := intake.New(intake.WithQueue(newBackend(t, pool, prefix)), intake.WithLogger(quiet))
		s.Handle(func(ctx context.Context, e event.Event) error {
			mu.Lock()
			defer mu.Unlock()
			handled[e.ID]++
			if len(handled) == total/2 && handled[e.ID] == 1 {
				close(all)
			}
			return nil
		}, intake.WithName("ledger"))
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(rctx) }()
		t.Cleanup(func() { cancel(); <-done })
		<-s.Started()
		return s
	}
	r1, r2 := replica(), replica()

	var peak uint64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	job := bulk.Job{Action: bulk.Replay, Filter: bulk.Filter{Source: "billing", Type: "a", Error: "503"}}
	start := time.Now()
	var progress [2]bulk.Progress
	var jobs sync.WaitGroup
	for i, s := range []*intake.Stream{r1, r2} {
		jobs.Add(1)
		go func() {
			defer jobs.Done()
			var err error
			progress[i], err = bulk.Run(ctx, s, job, bulk.Options{})
			assert.NoError(t, err)
		}()
	}
	jobs.Wait()
	jobTime := time.Since(start)
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		mu.Lock()
		n := len(handled)
		mu.Unlock()
		t.Fatalf("%d of %d handled after 5 minutes", n, total/2)
	}
	handledTime := time.Since(start)
	close(stopSampling)
	<-sampled
	time.Sleep(100 * time.Millisecond) // a second handling would show now
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, handled, total/2)
	for id, n := range handled {
		var i int
		fmt.Sscan(id, &i)
		require.Equal(t, 0, i%2, "event %s is of type b", id)
		require.Equal(t, 1, n, "event %s handled %d times", id, n)
	}
	assert.GreaterOrEqual(t, progress[0].Done+progress[1].Done, int64(total/2), "between them the jobs acted on every a")
	for i, p := range progress {
		assert.LessOrEqual(t, p.Matched, int64(total/2), "replica %d matched only a's", i+1)
	}
	dead, err := dedupe.Select(ctx, filler, dedupe.Filter{State: dedupe.Dead}, 0, func(r dedupe.Record) bool { return r.Event.Type == "a" })
	require.NoError(t, err)
	assert.Empty(t, dead, "no a is dead")
	t.Logf("bulk replay by two replicas at once: %d matched of %d dead; jobs ended in %v, all handled in %v (%.0f events/s); Go heap in use at most %d MiB; %s",
		total/2, total, jobTime.Round(time.Millisecond), handledTime.Round(time.Millisecond), float64(total/2)/handledTime.Seconds(), peak>>20, rss())
}

// rss is the process's peak resident set, as Linux reports it.
func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "peak RSS unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return "peak RSS " + strings.Join(strings.Fields(strings.TrimPrefix(line, "VmHWM:")), " ")
		}
	}
	return "peak RSS unknown"
}
