package poller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/leak"
	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/poller"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// sink records what it accepts; fail, when set, decides an error per put.
type sink struct {
	mu     sync.Mutex
	events []event.Event
	fail   func(e event.Event) error
}

func (s *sink) Put(_ context.Context, e event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		if err := s.fail(e); err != nil {
			return err
		}
	}
	s.events = append(s.events, e)
	return nil
}

func (s *sink) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(s.events))
	for i, e := range s.events {
		ids[i] = e.ID
	}
	return ids
}

// start runs p with snk and returns a stop function that cancels and
// waits for Run to return.
func start(t *testing.T, p *poller.Poller, snk event.Sink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, snk) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				assert.NoError(t, err)
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// backoffRecorder records the backoff delays the poller reports.
type backoffRecorder struct {
	metric.Discard
	mu     sync.Mutex
	delays []time.Duration
}

func (r *backoffRecorder) Observe(name, _ string, d time.Duration) {
	if name == metric.Backoff {
		r.mu.Lock()
		r.delays = append(r.delays, d)
		r.mu.Unlock()
	}
}

func (r *backoffRecorder) get() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.delays...)
}

func TestBackoffGrowsThenResets(t *testing.T) {
	leak.Check(t)
	var calls atomic.Int64
	fetch := func(ctx context.Context, cursor string) ([]event.Event, string, error) {
		// Five failures, one success, then failures again.
		if n := calls.Add(1); n == 6 {
			return nil, "", nil
		}
		return nil, "", errors.New("upstream down")
	}
	rec := &backoffRecorder{}
	p := poller.New("api", pageOf(fetch), poller.Every(time.Millisecond), poller.WithBackoff(4*time.Millisecond, 40*time.Millisecond),
		poller.WithLogger(quiet), poller.WithMetrics(rec))
	stop := start(t, p, &sink{})
	require.Eventually(t, func() bool { return len(rec.get()) >= 7 }, 5*time.Second, time.Millisecond)
	stop()

	d := rec.get()
	want := []time.Duration{4, 8, 16, 32, 40, 4, 8} // ms; the success after the fifth resets it
	for i, w := range want {
		w *= time.Millisecond
		lo, hi := time.Duration(float64(w)*0.79), time.Duration(float64(w)*1.21)
		assert.True(t, d[i] >= lo && d[i] <= hi, "delay %d = %v, want %v ±20%%", i, d[i], w)
	}
}

func TestRetryAfterIsObeyedAndCapped(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter func() string
		cap        time.Duration
		min, max   time.Duration
	}{
		{"seconds", func() string { return "2" }, time.Hour, 2 * time.Second, time.Hour},
		{"http date", func() string { return time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat) }, time.Hour, 2 * time.Second, time.Hour},
		{"years, capped", func() string { return "999999999999" }, 50 * time.Millisecond, 50 * time.Millisecond, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var times []time.Time
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				times = append(times, time.Now())
				n := len(times)
				mu.Unlock()
				if n == 1 {
					w.Header().Set("Retry-After", tt.retryAfter())
					w.WriteHeader(http.StatusTooManyRequests)
					return
				}
				_, _ = w.Write([]byte(`[]`))
			}))
			defer srv.Close()
			p := poller.New("api", listAPI(srv.URL), poller.Every(time.Millisecond), poller.WithBackoff(time.Millisecond, time.Millisecond),
				poller.WithMaxRetryAfter(tt.cap), poller.WithLogger(quiet))
			stop := start(t, p, &sink{})
			require.Eventually(t, func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(times) >= 2
			}, 10*time.Second, 5*time.Millisecond)
			stop()
			mu.Lock()
			gap := times[1].Sub(times[0])
			mu.Unlock()
			assert.GreaterOrEqual(t, gap, tt.min, "no request before the server's delay")
			assert.Less(t, gap, tt.max)
		})
	}
}

// listAPI is a fetch for the test servers: GET <base>?after=<cursor>,
// a JSON array of ids, cursor = last id.
func listAPI(base string, opts ...poller.HTTPOption) *poller.HTTPFetcher {
	return poller.HTTP(nil,
		func(ctx context.Context, cursor string) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, base+"?after="+cursor, nil)
		},
		decodeIDs, opts...)
}

func decodeIDs(resp *http.Response, body []byte) (poller.Page, error) {
	var ids []string
	if err := json.Unmarshal(body, &ids); err != nil {
		return poller.Page{}, err
	}
	events := make([]event.Event, len(ids))
	for i, id := range ids {
		events[i] = event.Event{ID: id, Payload: []byte(id)}
	}
	next := ""
	if len(ids) > 0 {
		next = ids[len(ids)-1]
	}
	return poller.Page{Events: events, Next: next}, nil
}

// decodeIDsKeepCursor decodes like decodeIDs, for an API whose cursor
// never moves (one resource, or Link pagination only).
func decodeIDsKeepCursor(resp *http.Response, body []byte) (poller.Page, error) {
	pg, err := decodeIDs(resp, body)
	pg.Next = ""
	return pg, err
}

// pageOf adapts a fetch written as (events, next cursor, error) to a
// poller.Fetcher.
func pageOf(fn func(ctx context.Context, cursor string) ([]event.Event, string, error)) poller.FetchFunc {
	return func(ctx context.Context, cursor string) (poller.Page, error) {
		events, next, err := fn(ctx, cursor)
		return poller.Page{Events: events, Next: next}, err
	}
}

func TestConditionalRequest(t *testing.T) {
	leak.Check(t)
	page := []byte(`["a","b","c"]`)
	var full, notModified, saved atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const etag = `"v1"`
		if r.Header.Get("If-None-Match") == etag {
			notModified.Add(1)
			saved.Add(int64(len(page)))
			w.WriteHeader(http.StatusNotModified)
			return
		}
		full.Add(1)
		w.Header().Set("ETag", etag)
		_, _ = w.Write(page)
	}))
	defer srv.Close()
	fetch := poller.HTTP(nil, func(ctx context.Context, cursor string) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/state", nil) // same URL every time
	}, decodeIDsKeepCursor)
	p := poller.New("api", fetch, poller.Every(time.Millisecond), poller.WithLogger(quiet))
	snk := &sink{}
	stop := start(t, p, snk)
	require.Eventually(t, func() bool { return p.Stats().NotModified >= 5 }, 5*time.Second, time.Millisecond)
	stop()
	assert.Equal(t, int64(1), full.Load(), "the unchanged resource is sent once")
	assert.Equal(t, []string{"a", "b", "c"}, snk.ids())
	st, hs := p.Stats(), fetch.Stats()
	// A request may have been answered as the poller stopped, uncounted.
	assert.InDelta(t, notModified.Load(), st.NotModified, 1)
	assert.Equal(t, st.Polls, hs.Requests)
	assert.Greater(t, saved.Load(), hs.Bytes, "304s saved more bytes than were received")
	t.Logf("polls %d, 304s %d, bytes received %d, bytes saved by 304s %d", st.Polls, st.NotModified, hs.Bytes, saved.Load())
}

// pagedServer serves pages 1..n linked by Link rel="next"; page i holds
// events pi-a and pi-b. hook, if set, runs before a page is served and may
// answer instead (returning true).
func pagedServer(t *testing.T, n int, hook func(w http.ResponseWriter, page int) bool) (*httptest.Server, *atomic.Int64) {
	var requests atomic.Int64
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		if page == 0 {
			page = 1
		}
		if hook != nil && hook(w, page) {
			return
		}
		if page < n {
			w.Header().Set("Link", fmt.Sprintf(`<%s/events?page=%d>; rel="next", <%s/events?page=1>; rel="first"`, srv.URL, page+1, srv.URL))
		}
		fmt.Fprintf(w, `["p%d-a","p%d-b"]`, page, page)
	}))
	t.Cleanup(srv.Close)
	return srv, &requests
}

func pagedFetch(base string) *poller.HTTPFetcher {
	return poller.HTTP(nil, func(ctx context.Context, cursor string) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events?after="+cursor, nil)
		if err == nil {
			req.Header.Set("Authorization", "Bearer test")
		}
		return req, err
	}, decodeIDs)
}

func TestLinkPaginationInOnePoll(t *testing.T) {
	leak.Check(t)
	srv, requests := pagedServer(t, 3, nil)
	p := poller.New("api", pagedFetch(srv.URL), poller.Every(time.Hour), poller.WithLogger(quiet))
	snk := &sink{}
	stop := start(t, p, snk)
	require.Eventually(t, func() bool { return len(snk.ids()) == 6 }, 5*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	stop()
	assert.Equal(t, []string{"p1-a", "p1-b", "p2-a", "p2-b", "p3-a", "p3-b"}, snk.ids())
	assert.Equal(t, int64(3), requests.Load(), "three pages in the first poll, then an hour's wait")
}

func TestPageCap(t *testing.T) {
	leak.Check(t)
	srv, requests := pagedServer(t, 1000, nil) // an endless chain, in effect
	p := poller.New("api", pagedFetch(srv.URL), poller.Every(time.Hour), poller.WithMaxPages(4), poller.WithLogger(quiet))
	snk := &sink{}
	stop := start(t, p, snk)
	require.Eventually(t, func() bool { return requests.Load() == 4 }, 5*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	stop()
	assert.Equal(t, int64(4), requests.Load())
	assert.Len(t, snk.ids(), 8)
}

func TestResumeFromCheckpoint(t *testing.T) {
	leak.Check(t)
	cp := &poller.MemoryCheckpoint{}
	var stopFirst context.CancelFunc
	var firstRun atomic.Bool
	firstRun.Store(true)
	srv, _ := pagedServer(t, 4, func(w http.ResponseWriter, page int) bool {
		if page == 3 && firstRun.Load() {
			stopFirst() // the process stops after page 2 of 4
			http.Error(w, "stopping", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	first := &sink{}
	p1 := poller.New("api", pagedFetch(srv.URL), poller.Every(time.Hour), poller.WithCheckpoint(cp), poller.WithLogger(quiet))
	ctx, cancel := context.WithCancel(context.Background())
	stopFirst = cancel
	require.NoError(t, p1.Run(ctx, first))
	assert.Equal(t, []string{"p1-a", "p1-b", "p2-a", "p2-b"}, first.ids())

	firstRun.Store(false)
	second := &sink{}
	p2 := poller.New("api", pagedFetch(srv.URL), poller.Every(time.Hour), poller.WithCheckpoint(cp), poller.WithLogger(quiet))
	stop := start(t, p2, second)
	require.Eventually(t, func() bool { return len(second.ids()) == 4 }, 5*time.Second, time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	stop()
	assert.Equal(t, []string{"p3-a", "p3-b", "p4-a", "p4-b"}, second.ids(), "nothing redelivered, nothing skipped")
}

func TestQueueFullKeepsCursor(t *testing.T) {
	leak.Check(t)
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		if r.URL.Query().Get("after") == "" {
			_, _ = w.Write([]byte(`["e1","e2","e3"]`))
			return
		}
		_, _ = w.Write([]byte(`[]`))
	}))
	defer srv.Close()
	cp := &poller.MemoryCheckpoint{}
	var full atomic.Bool
	full.Store(true)
	var rejected atomic.Int64
	snk := &sink{fail: func(e event.Event) error {
		if e.ID == "e2" && full.Load() {
			rejected.Add(1)
			return event.RetryAfter(time.Millisecond, event.ErrQueueFull)
		}
		return nil
	}}
	p := poller.New("api", listAPI(srv.URL), poller.Every(time.Millisecond), poller.WithCheckpoint(cp), poller.WithLogger(quiet))
	stop := start(t, p, snk)
	require.Eventually(t, func() bool { return rejected.Load() >= 5 }, 5*time.Second, time.Millisecond)
	c, _ := cp.Load(context.Background(), "api")
	assert.Equal(t, "", c, "cursor not advanced while e2 is not stored")
	assert.Equal(t, []string{"e1"}, snk.ids())
	assert.Equal(t, int64(1), served.Load(), "the poller waits with the page it has")

	full.Store(false)
	require.Eventually(t, func() bool { c, _ := cp.Load(context.Background(), "api"); return c == "e3" }, 5*time.Second, time.Millisecond)
	stop()
	assert.Equal(t, []string{"e1", "e2", "e3"}, snk.ids(), "each event once, in order")
}

func TestStoreErrorBacksOffWithoutAdvancing(t *testing.T) {
	leak.Check(t)
	var calls atomic.Int64
	fetch := func(ctx context.Context, cursor string) ([]event.Event, string, error) {
		calls.Add(1)
		if cursor != "" {
			return nil, cursor, nil
		}
		return []event.Event{{ID: "a"}, {ID: "b"}}, "b", nil
	}
	var down atomic.Bool
	down.Store(true)
	snk := &sink{fail: func(e event.Event) error {
		if e.ID == "b" && down.Load() {
			return errors.New("store unreachable")
		}
		return nil
	}}
	cp := &poller.MemoryCheckpoint{}
	p := poller.New("api", pageOf(fetch), poller.Every(time.Millisecond), poller.WithBackoff(time.Millisecond, 2*time.Millisecond),
		poller.WithCheckpoint(cp), poller.WithLogger(quiet))
	stop := start(t, p, snk)
	require.Eventually(t, func() bool { return p.Stats().Errors >= 3 }, 5*time.Second, time.Millisecond)
	c, _ := cp.Load(context.Background(), "api")
	assert.Equal(t, "", c)
	down.Store(false)
	require.Eventually(t, func() bool { c, _ := cp.Load(context.Background(), "api"); return c == "b" }, 5*time.Second, time.Millisecond)
	stop()
	ids := snk.ids()
	assert.Equal(t, "b", ids[len(ids)-1])
	assert.Contains(t, ids, "a")
}

func TestTriggersCoalesce(t *testing.T) {
	leak.Check(t)
	release := make(chan struct{})
	var calls atomic.Int64
	fetch := func(ctx context.Context, cursor string) ([]event.Event, string, error) {
		if calls.Add(1) == 1 {
			<-release // a slow first poll
		}
		return nil, "", nil
	}
	p := poller.New("api", pageOf(fetch), poller.Every(time.Hour), poller.WithMinGap(time.Millisecond), poller.WithLogger(quiet))
	stop := start(t, p, &sink{})
	require.Eventually(t, func() bool { return calls.Load() == 1 }, 30*time.Second, time.Millisecond)
	for range 10 {
		p.Trigger()
	}
	close(release)
	require.Eventually(t, func() bool { return calls.Load() == 2 }, 30*time.Second, time.Millisecond)
	time.Sleep(50 * time.Millisecond)
	assert.Equal(t, int64(2), calls.Load(), "ten triggers during one poll make exactly one more")

	p.Trigger()
	require.Eventually(t, func() bool { return calls.Load() == 3 }, 30*time.Second, time.Millisecond)
	stop()
}

func TestCancelReturnsPromptly(t *testing.T) {
	for _, tt := range []struct {
		name  string
		fetch func(ctx context.Context, cursor string) ([]event.Event, string, error)
	}{
		{"mid-backoff", func(ctx context.Context, cursor string) ([]event.Event, string, error) {
			return nil, "", event.RetryAfter(time.Hour, errors.New("come back in an hour"))
		}},
		{"mid-request", func(ctx context.Context, cursor string) ([]event.Event, string, error) {
			<-ctx.Done() // a response that never ends
			return nil, "", ctx.Err()
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			leak.Check(t)
			var called atomic.Bool
			p := poller.New("api", pageOf(func(ctx context.Context, c string) ([]event.Event, string, error) {
				called.Store(true)
				return tt.fetch(ctx, c)
			}), poller.WithBackoff(time.Hour, time.Hour), poller.WithLogger(quiet))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx, &sink{}) }()
			require.Eventually(t, called.Load, 30*time.Second, time.Millisecond)
			time.Sleep(10 * time.Millisecond)
			cancel()
			select {
			case err := <-done:
				assert.NoError(t, err)
			case <-time.After(10 * time.Second):
				t.Fatal("Run still running 10 s after cancel")
			}
		})
	}
}

func TestCursorExpiredStartsOver(t *testing.T) {
	leak.Check(t)
	var calls atomic.Int64
	var cursors []string
	var mu sync.Mutex
	fetch := func(ctx context.Context, cursor string) ([]event.Event, string, error) {
		mu.Lock()
		cursors = append(cursors, cursor)
		mu.Unlock()
		switch calls.Add(1) {
		case 1:
			return []event.Event{{ID: "x"}}, "c1", nil
		case 2:
			return nil, "", fmt.Errorf("gone: %w", poller.ErrCursorExpired)
		}
		return nil, "", nil
	}
	p := poller.New("api", pageOf(fetch), poller.Every(time.Millisecond), poller.WithInitialCursor("start"), poller.WithLogger(quiet))
	stop := start(t, p, &sink{})
	require.Eventually(t, func() bool { return calls.Load() >= 3 }, 30*time.Second, time.Millisecond)
	stop()
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"start", "c1", "start"}, cursors[:3])
}

func TestHTTPErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   func(t *testing.T, err error)
	}{
		{"500 with excerpt", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "database on fire", http.StatusInternalServerError)
		}, func(t *testing.T, err error) {
			var se *poller.StatusError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, 500, se.Code)
			assert.Contains(t, se.Body, "database on fire")
		}},
		{"429 without Retry-After", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusTooManyRequests)
		}, func(t *testing.T, err error) {
			_, ok := event.RetryDelay(err)
			assert.False(t, ok)
			var se *poller.StatusError
			require.ErrorAs(t, err, &se)
		}},
		{"503 with Retry-After", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusServiceUnavailable)
		}, func(t *testing.T, err error) {
			d, ok := event.RetryDelay(err)
			assert.True(t, ok)
			assert.Equal(t, 7*time.Second, d)
		}},
		{"410", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusGone)
		}, func(t *testing.T, err error) { assert.ErrorIs(t, err, poller.ErrCursorExpired) }},
		{"invalid JSON", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`[1,`))
		}, func(t *testing.T, err error) { assert.ErrorContains(t, err, "decode") }},
		{"too large", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write(make([]byte, 2048))
		}, func(t *testing.T, err error) { assert.ErrorIs(t, err, poller.ErrResponseTooLarge) }},
		{"never ends", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			_, _ = w.Write([]byte(`[`))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}, func(t *testing.T, err error) { assert.ErrorIs(t, err, context.DeadlineExceeded) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			fetch := listAPI(srv.URL, poller.WithMaxResponse(1024), poller.WithRequestTimeout(200*time.Millisecond))
			_, err := fetch.Fetch(context.Background(), "")
			require.Error(t, err)
			tt.check(t, err)
		})
	}
}

func TestRateLimitHeadersSlowTheNextPoll(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(h http.Header)
	}{
		{"X-RateLimit", func(h http.Header) {
			h.Set("X-RateLimit-Remaining", "0")
			h.Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(2*time.Second).Unix(), 10))
		}},
		{"IETF RateLimit", func(h http.Header) { h.Set("RateLimit", `"default";r=0;t=1`) }},
		{"X-Poll-Interval", func(h http.Header) { h.Set("X-Poll-Interval", "1") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var times []time.Time
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				times = append(times, time.Now())
				first := len(times) == 1
				mu.Unlock()
				if first {
					tt.set(w.Header())
				}
				_, _ = w.Write([]byte(`[]`))
			}))
			defer srv.Close()
			p := poller.New("api", listAPI(srv.URL), poller.Every(10*time.Millisecond), poller.WithLogger(quiet))
			stop := start(t, p, &sink{})
			require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(times) >= 2 }, 5*time.Second, 5*time.Millisecond)
			stop()
			mu.Lock()
			defer mu.Unlock()
			assert.GreaterOrEqual(t, times[1].Sub(times[0]), 900*time.Millisecond, "the next poll waited for the quota")
		})
	}
}

type denyLease struct{ acquires atomic.Int64 }

func (d *denyLease) Acquire(context.Context, string, time.Duration) (bool, error) {
	d.acquires.Add(1)
	return false, nil
}
func (d *denyLease) Renew(context.Context, string, time.Duration) (bool, error) { return false, nil }
func (d *denyLease) Release(context.Context, string) error                      { return nil }

func TestFollowerDoesNotPoll(t *testing.T) {
	leak.Check(t)
	var calls atomic.Int64
	lease := &denyLease{}
	p := poller.New("api", pageOf(func(ctx context.Context, c string) ([]event.Event, string, error) {
		calls.Add(1)
		return nil, "", nil
	}), poller.Every(time.Millisecond), poller.WithLease(lease, 30*time.Millisecond), poller.WithLogger(quiet))
	stop := start(t, p, &sink{})
	require.Eventually(t, func() bool { return lease.acquires.Load() >= 3 }, 30*time.Second, time.Millisecond)
	stop()
	assert.Zero(t, calls.Load())
}

func TestEventsGetSourceViaAndContentID(t *testing.T) {
	leak.Check(t)
	fetch := func(ctx context.Context, cursor string) ([]event.Event, string, error) {
		if cursor == "" {
			return []event.Event{{Payload: []byte(`{"no":"id"}`)}, {ID: "given"}}, "1", nil
		}
		return nil, "", nil
	}
	snk := &sink{}
	p := poller.New("shop", pageOf(fetch), poller.Every(time.Hour), poller.WithLogger(quiet))
	stop := start(t, p, snk)
	require.Eventually(t, func() bool { return len(snk.ids()) == 2 }, 30*time.Second, time.Millisecond)
	stop()
	snk.mu.Lock()
	defer snk.mu.Unlock()
	for _, e := range snk.events {
		assert.Equal(t, "shop", e.Source)
		assert.Equal(t, event.Poll, e.Via)
		assert.False(t, e.Received.IsZero())
	}
	assert.Regexp(t, `^sha256:[0-9a-f]{32}$`, snk.events[0].ID)
	assert.Equal(t, "given", snk.events[1].ID)
}

// An API whose cursor goes backwards makes the poller fetch old events
// again; the stream's idempotency store keeps them from being delivered
// twice.
func TestCursorGoingBackwardsIsDeduped(t *testing.T) {
	leak.Check(t)
	var calls atomic.Int64
	fetch := func(ctx context.Context, cursor string) ([]event.Event, string, error) {
		switch calls.Add(1) {
		case 1:
			return []event.Event{{ID: "a"}, {ID: "b"}}, "2", nil
		case 2:
			return []event.Event{{ID: "a"}, {ID: "b"}, {ID: "c"}}, "1", nil // back to an older cursor
		}
		return nil, "", nil
	}
	s := intake.New(intake.WithLogger(quiet))
	p := poller.New("api", pageOf(fetch), poller.Every(time.Millisecond), poller.WithLogger(quiet))
	s.Add(p)
	deliveries := s.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var got []string
	for len(got) < 3 {
		select {
		case d := <-deliveries:
			got = append(got, d.Event.ID)
			d.Ack()
		case <-time.After(5 * time.Second):
			t.Fatalf("got %v", got)
		}
	}
	require.Eventually(t, func() bool { return calls.Load() >= 4 }, 30*time.Second, time.Millisecond)
	cancel()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for d := range deliveries {
			got = append(got, d.Event.ID)
		}
	}()
	require.NoError(t, <-done)
	<-drained
	assert.Equal(t, []string{"a", "b", "c"}, got)
	assert.Equal(t, int64(2), p.Stats().Duplicates)
}

// An event the sink refuses as invalid (one the store can never keep) is
// skipped and counted, and the cursor moves on: it must not stall the
// poller on that page forever.
func TestInvalidEventIsSkippedNotRetried(t *testing.T) {
	leak.Check(t)
	fetch := func(ctx context.Context, cursor string) ([]event.Event, string, error) {
		if cursor != "" {
			return nil, cursor, nil
		}
		return []event.Event{{ID: "a"}, {ID: "odd"}, {ID: "b"}}, "b", nil
	}
	snk := &sink{fail: func(e event.Event) error {
		if e.ID == "odd" {
			return fmt.Errorf("store: %w", event.ErrInvalid)
		}
		return nil
	}}
	cp := &poller.MemoryCheckpoint{}
	p := poller.New("api", pageOf(fetch), poller.Every(time.Millisecond), poller.WithCheckpoint(cp), poller.WithLogger(quiet))
	stop := start(t, p, snk)
	require.Eventually(t, func() bool { c, _ := cp.Load(context.Background(), "api"); return c == "b" }, 5*time.Second, time.Millisecond)
	stop()
	assert.Equal(t, int64(1), p.Stats().Invalid)
	assert.Zero(t, p.Stats().Errors)
	assert.Contains(t, snk.ids(), "b")
}

// batchSink is a sink that stores many at once, and counts its calls.
type batchSink struct {
	sink
	many, one atomic.Int64
}

func (b *batchSink) PutMany(ctx context.Context, events []event.Event) []error {
	b.many.Add(1)
	errs := make([]error, len(events))
	for i, e := range events {
		errs[i] = b.sink.Put(ctx, e)
	}
	return errs
}

func (b *batchSink) Put(ctx context.Context, e event.Event) error {
	b.one.Add(1)
	return b.sink.Put(ctx, e)
}

// A page goes to a batch sink in one call; an event it could not take
// (a full queue) is put again on its own.
func TestPageToABatchSink(t *testing.T) {
	leak.Check(t)
	var full atomic.Int64
	snk := &batchSink{sink: sink{fail: func(e event.Event) error {
		if e.ID == "e3" && full.Add(1) <= 2 {
			return event.RetryAfter(time.Millisecond, event.ErrQueueFull)
		}
		return nil
	}}}
	fetch := func(ctx context.Context, cursor string) ([]event.Event, string, error) {
		if cursor != "" {
			return nil, "", nil
		}
		var page []event.Event
		for i := range 10 {
			page = append(page, event.Event{ID: fmt.Sprint("e", i)})
		}
		return page, "e9", nil
	}
	p := poller.New("api", pageOf(fetch), poller.Every(time.Hour), poller.WithLogger(quiet))
	stop := start(t, p, snk)
	require.Eventually(t, func() bool { return len(snk.ids()) == 10 }, 5*time.Second, time.Millisecond)
	stop()
	assert.Equal(t, int64(1), snk.many.Load(), "one call for the page")
	assert.Equal(t, int64(2), snk.one.Load(), "e3 put again until there was room")
}
