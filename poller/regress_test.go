package poller_test

// Regression tests for the poller defects of issue #11, each written to
// fail on the poller as it was before the fix.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/leak"
	"github.com/intakehq/intake/poller"
)

// Defect 1: a page whose events could not all be stored must be fetched
// again in full, not answered 304 because its validators were remembered.
func TestValidatorsOnlyAfterThePageIsStored(t *testing.T) {
	leak.Check(t)
	var full, notModified atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == `"v1"` {
			notModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("Last-Modified", "Sun, 29 Nov 2026 10:00:00 GMT")
		_, _ = w.Write([]byte(`["a","b","c"]`))
	}))
	defer srv.Close()
	fetch := poller.HTTP(nil, func(ctx context.Context, cursor string) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/state", nil)
	}, decodeIDsKeepCursor)
	var failures atomic.Int64
	snk := &sink{fail: func(e event.Event) error {
		if e.ID == "b" && failures.Add(1) <= 3 { // a store outage, three puts long
			return errors.New("store unreachable")
		}
		return nil
	}}
	p := poller.New("api", fetch, poller.Every(time.Millisecond), poller.WithBackoff(time.Millisecond, 2*time.Millisecond),
		poller.WithLogger(quiet))
	stop := start(t, p, snk)
	require.Eventually(t, func() bool {
		ids := snk.ids()
		return len(ids) > 0 && ids[len(ids)-1] == "c"
	}, 5*time.Second, time.Millisecond, "the page's events after the outage")
	require.Eventually(t, func() bool { return notModified.Load() >= 3 }, 5*time.Second, time.Millisecond)
	stop()
	assert.Equal(t, int64(4), full.Load(), "three failed pages fetched again in full, then one stored")
}

// Defect 2: a poller restarted from a checkpoint taken in the middle of a
// Link chain requests the next page with what the build function adds
// (here the credentials), and moves on.
func TestLinkCursorResumesWithCredentials(t *testing.T) {
	leak.Check(t)
	var unauthorized atomic.Int64
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			unauthorized.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if page == 0 {
			page = 1
		}
		if page < 3 {
			w.Header().Set("Link", fmt.Sprintf(`<%s/events?page=%d>; rel="next"`, srv.URL, page+1))
		}
		fmt.Fprintf(w, `["p%d"]`, page)
	}))
	defer srv.Close()
	newFetch := func() *poller.HTTPFetcher {
		return poller.HTTP(nil, func(ctx context.Context, cursor string) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events", nil)
			if err == nil {
				req.Header.Set("Authorization", "Bearer secret")
			}
			return req, err
		}, decodeIDsKeepCursor)
	}
	cp := &poller.MemoryCheckpoint{}
	// The first process stops after one page, its checkpoint on page 2.
	snk := &sink{}
	p := poller.New("api", newFetch(), poller.Every(time.Hour), poller.WithMaxPages(1), poller.WithCheckpoint(cp), poller.WithLogger(quiet))
	stop := start(t, p, snk)
	require.Eventually(t, func() bool { return len(snk.ids()) == 1 }, 5*time.Second, time.Millisecond)
	stop()
	// A restart: a new fetch (no memory of the first request), same checkpoint.
	p = poller.New("api", newFetch(), poller.Every(10*time.Millisecond), poller.WithMaxPages(5), poller.WithCheckpoint(cp),
		poller.WithBackoff(time.Millisecond, 5*time.Millisecond), poller.WithLogger(quiet))
	stop = start(t, p, snk)
	require.Eventually(t, func() bool { return len(snk.ids()) >= 3 }, 2*time.Second, time.Millisecond,
		"pages 2 and 3 after the restart (401s: %d)", unauthorized.Load())
	stop()
	assert.Equal(t, []string{"p1", "p2", "p3"}, snk.ids()[:3])
	assert.Zero(t, unauthorized.Load())
}

// Defect 3: a queue that stays full is waited out at a bounded pace, never
// in a loop without sleep.
func TestFullQueueNoSpin(t *testing.T) {
	leak.Check(t)
	var puts atomic.Int64
	full := event.SinkFunc(func(context.Context, event.Event) error {
		puts.Add(1)
		return event.RetryAfter(time.Millisecond, event.ErrQueueFull)
	})
	fetch := func(ctx context.Context, cursor string) ([]event.Event, string, error) {
		return []event.Event{{ID: "a"}}, "", nil
	}
	p := poller.New("api", pageOf(fetch), poller.Every(time.Hour), poller.WithLogger(quiet))
	stop := start(t, p, full)
	time.Sleep(400 * time.Millisecond)
	stop()
	// At most one put a millisecond; the old doubling wait overflowed after
	// 44 doublings and then put in a loop without sleeping.
	assert.Less(t, puts.Load(), int64(800), "puts in 400 ms against a full queue")
	t.Logf("%d puts in 400 ms against a full queue", puts.Load())
}

// Defect 4: events without an id get a content id from everything that
// makes them distinct, not from the payload alone.
func TestContentIDsKeepDistinctEventsApart(t *testing.T) {
	leak.Check(t)
	at := time.Unix(1_700_000_000, 0)
	fetched := []event.Event{
		{Type: "a"},
		{Type: "b"},
		{Type: "a", Meta: map[string]string{"k": "v"}},
		{Type: "a", Time: at},
		{Type: "a", Payload: []byte("x")},
		{Type: "a", Payload: []byte("x")}, // the same event twice: one id
	}
	fetch := func(ctx context.Context, cursor string) ([]event.Event, string, error) {
		if cursor != "" {
			return nil, "", nil
		}
		return fetched, "done", nil
	}
	snk := &sink{}
	p := poller.New("api", pageOf(fetch), poller.Every(time.Hour), poller.WithLogger(quiet))
	stop := start(t, p, snk)
	require.Eventually(t, func() bool { return len(snk.ids()) == len(fetched) }, 5*time.Second, time.Millisecond)
	stop()
	ids := map[string]bool{}
	for _, id := range snk.ids() {
		ids[id] = true
	}
	assert.Len(t, ids, 5, "five distinct events, one repeated: %v", snk.ids())
	for i, e := range fetched {
		e.Source = "api"
		assert.True(t, ids[event.ContentID(e)], "event %d's id is event.ContentID", i)
	}
}

// renewCounter counts lease calls; Renew hangs while hang is set.
type renewCounter struct {
	acquires, renews, releases atomic.Int64
	hang                       atomic.Bool
	lastOK                     atomic.Int64 // Unix ns of the last Acquire or Renew that held the lease
}

func (l *renewCounter) Acquire(ctx context.Context, _ string, _ time.Duration) (bool, error) {
	l.acquires.Add(1)
	if l.hang.Load() {
		<-ctx.Done() // the same database
		return false, ctx.Err()
	}
	l.lastOK.Store(time.Now().UnixNano())
	return true, nil
}

func (l *renewCounter) Renew(ctx context.Context, _ string, _ time.Duration) (bool, error) {
	l.renews.Add(1)
	if l.hang.Load() {
		<-ctx.Done() // a database that does not answer, until the caller gives up
		return false, ctx.Err()
	}
	l.lastOK.Store(time.Now().UnixNano())
	return true, nil
}

func (l *renewCounter) Release(context.Context, string) error {
	l.releases.Add(1)
	return nil
}

// Defect 5a: a fetch that panics is a failed poll; it does not leak the
// lease renewer or skip the release.
func TestPanickingFetchIsAFailedPoll(t *testing.T) {
	leak.Check(t)
	lease := &renewCounter{}
	var calls atomic.Int64
	fetch := func(ctx context.Context, cursor string) ([]event.Event, string, error) {
		if calls.Add(1) <= 15 {
			panic("decoder bug")
		}
		return nil, "", nil
	}
	p := poller.New("api", pageOf(fetch), poller.Every(time.Millisecond), poller.WithBackoff(time.Millisecond, time.Millisecond),
		poller.WithLease(lease, 300*time.Millisecond), poller.WithLogger(quiet))
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("Run panicked: %v", r)
			}
		}()
		done <- p.Run(ctx, &sink{})
	}()
	require.Eventually(t, func() bool { return calls.Load() > 20 }, 5*time.Second, time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	assert.GreaterOrEqual(t, p.Stats().Errors, int64(15))
	assert.LessOrEqual(t, lease.acquires.Load(), lease.releases.Load()+1)
}

// Defect 5b: when Renew does not answer, the poller stops polling before
// its lease can have run out.
func TestHangingRenewStopsPolling(t *testing.T) {
	leak.Check(t)
	lease := &renewCounter{}
	var polls atomic.Int64
	var mu sync.Mutex
	var last time.Time
	fetch := func(ctx context.Context, cursor string) ([]event.Event, string, error) {
		polls.Add(1)
		mu.Lock()
		last = time.Now()
		mu.Unlock()
		return nil, "", nil
	}
	// The lease runs out ttl after the last renewal that held it; the
	// poller stops about 0.6 ttl after it (a renewal every ttl/3, given
	// ttl/4). A ttl of 600 ms leaves a loaded machine's scheduling delays
	// (tens of ms: 150 ms failed under CI load) far from the edge.
	const ttl = 600 * time.Millisecond
	p := poller.New("api", pageOf(fetch), poller.Every(5*time.Millisecond), poller.WithJitter(0), poller.WithLease(lease, ttl), poller.WithLogger(quiet))
	stop := start(t, p, &sink{})
	require.Eventually(t, func() bool { return lease.renews.Load() >= 1 }, 5*time.Second, time.Millisecond)
	lease.hang.Store(true)
	time.Sleep(3 * ttl)
	mu.Lock()
	lastPoll := last
	mu.Unlock()
	stop()
	held := time.Unix(0, lease.lastOK.Load())
	assert.Less(t, lastPoll.Sub(held), ttl, "no poll after the lease may have run out")
}

// Defect 6a: triggers are bounded by a minimum gap between polls.
func TestTriggersHaveAMinimumGap(t *testing.T) {
	leak.Check(t)
	var polls atomic.Int64
	fetch := func(ctx context.Context, cursor string) ([]event.Event, string, error) {
		polls.Add(1)
		return nil, "", nil
	}
	p := poller.New("api", pageOf(fetch), poller.Every(time.Hour), poller.WithMinGap(50*time.Millisecond), poller.WithLogger(quiet))
	stop := start(t, p, &sink{})
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		p.Trigger()
		time.Sleep(time.Millisecond)
	}
	stop()
	// 500 ms / 50 ms = 10 polls, plus the first.
	assert.LessOrEqual(t, polls.Load(), int64(12))
	assert.GreaterOrEqual(t, polls.Load(), int64(5), "triggers still poll, at the gap")
}

// Defect 6b: options that would busy-loop are refused.
func TestPollerOptionsValidated(t *testing.T) {
	fetch := func(ctx context.Context, cursor string) ([]event.Event, string, error) { return nil, "", nil }
	for name, opt := range map[string]func() poller.Option{
		"Every(-1)":         func() poller.Option { return poller.Every(-time.Second) },
		"WithLease(l, -1)":  func() poller.Option { return poller.WithLease(&renewCounter{}, -time.Second) },
		"WithMinGap(-1)":    func() poller.Option { return poller.WithMinGap(-time.Second) },
		"WithBackoff(2, 1)": func() poller.Option { return poller.WithBackoff(2*time.Second, time.Second) },
		"WithJitter(2)":     func() poller.Option { return poller.WithJitter(2) },
		"WithMaxPages(-1)":  func() poller.Option { return poller.WithMaxPages(-1) },
	} {
		t.Run(name, func(t *testing.T) {
			assert.Panics(t, func() { poller.New("api", pageOf(fetch), opt()) })
		})
	}
	// Zero is the documented default: Every(0) polls every 30 s, not every
	// millisecond, and WithLease(l, 0) renews every 10 s, not in a loop.
	var polls atomic.Int64
	lease := &renewCounter{}
	p := poller.New("api", pageOf(func(ctx context.Context, cursor string) ([]event.Event, string, error) {
		polls.Add(1)
		return nil, "", nil
	}), poller.Every(0), poller.WithLease(lease, 0), poller.WithLogger(quiet))
	stop := start(t, p, &sink{})
	time.Sleep(200 * time.Millisecond)
	stop()
	assert.Equal(t, int64(1), polls.Load())
	assert.Zero(t, lease.renews.Load())
}
