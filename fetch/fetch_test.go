package fetch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fetch"
	"github.com/intakehq/intake/intaketest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// api serves objects at /objects/{id} as {"id":…,"full":true}, counting
// the GETs per object; fail, when set, decides which requests fail.
type api struct {
	mu   sync.Mutex
	gets map[string]int
	fail func() (status int, retryAfter string) // 0: answer
	slow time.Duration
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/objects/")
	a.mu.Lock()
	a.gets[id]++
	fail := a.fail
	a.mu.Unlock()
	time.Sleep(a.slow)
	if fail != nil {
		if code, ra := fail(); code != 0 {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			http.Error(w, "try later", code)
			return
		}
	}
	fmt.Fprintf(w, `{"id":%q,"full":true}`, id)
}

func (a *api) total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.gets {
		n += c
	}
	return n
}

// thin is a notification about object obj: it names the object and its
// URL, as Stripe's thin events do.
func thin(srv string, i, obj int) event.Event {
	p := fmt.Sprintf(`{"id":"evt_%04d","related_object":{"id":"obj_%03d","url":"%s/objects/obj_%03d"}}`, i, obj, srv, obj)
	return event.Event{Source: "api", ID: fmt.Sprintf("evt_%04d", i), Type: "thing.updated", Payload: []byte(p)}
}

// object reads the related object of a thin event.
func object(e event.Event) (fetch.Object, bool) {
	var n struct {
		Related *struct{ ID, URL string } `json:"related_object"`
	}
	if json.Unmarshal(e.Payload, &n) != nil || n.Related == nil {
		return fetch.Object{}, false
	}
	return fetch.Object{ID: n.Related.ID, URL: n.Related.URL}, true
}

// run puts events into a stream whose handler is f.Handle(record) and
// waits until each was handled, or limit.
func run(t *testing.T, f *fetch.Fetcher, events []event.Event, limit time.Duration, opts ...intake.SubscribeOption) map[string][]event.Event {
	return runPaced(t, f, events, 0, limit, opts...)
}

// runPaced is run with a pause after every 100 events: bursts.
func runPaced(t *testing.T, f *fetch.Fetcher, events []event.Event, pause, limit time.Duration, opts ...intake.SubscribeOption) map[string][]event.Event {
	t.Helper()
	s := intake.New(intake.WithLogger(quiet), intake.WithQueueSize(len(events)+1))
	var mu sync.Mutex
	got := map[string][]event.Event{}
	all := make(chan struct{})
	s.Handle(f.Handle(func(ctx context.Context, e event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		got[e.ID] = append(got[e.ID], e)
		if len(got) == len(events) {
			close(all)
		}
		return nil
	}), append([]intake.SubscribeOption{intake.WithWorkers(16)}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for i, e := range events {
		if err := intaketest.Put(context.Background(), s, e); err != nil {
			t.Fatal(err)
		}
		if pause > 0 && i%100 == 99 {
			time.Sleep(pause)
		}
	}
	select {
	case <-all:
	case <-time.After(limit):
		t.Errorf("not every event handled within %v", limit)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return got
}

// checkFull checks that every event was handled once, with the full
// object as its payload and the notification kept.
func checkFull(t *testing.T, events []event.Event, got map[string][]event.Event) {
	t.Helper()
	for _, e := range events {
		es := got[e.ID]
		if len(es) != 1 {
			t.Errorf("%s handled %d times", e.ID, len(es))
			continue
		}
		o, _ := object(e)
		if want := fmt.Sprintf(`{"id":%q,"full":true}`, o.ID); string(es[0].Payload) != want {
			t.Errorf("%s delivered with %s, want %s", e.ID, es[0].Payload, want)
		}
		if es[0].Meta[fetch.MetaNotification] != string(e.Payload) {
			t.Errorf("%s: the notification was not kept", e.ID)
		}
	}
}

// 1,000 thin events about 100 objects, in ten bursts 300 ms apart: the
// fetches of one object start at least the gap apart (at most one per
// object and second, plus the first), every event delivered with its
// full object.
func TestBurstsFetchOncePerObjectAndGap(t *testing.T) {
	a := &api{gets: map[string]int{}, slow: 5 * time.Millisecond}
	srv := httptest.NewServer(a)
	defer srv.Close()
	const gap = time.Second
	f := fetch.New(object, fetch.HTTP(srv.Client(), nil), fetch.WithMinGap(gap))
	var events []event.Event
	for i := range 1000 {
		events = append(events, thin(srv.URL, i, i%100))
	}
	start := time.Now()
	got := runPaced(t, f, events, 300*time.Millisecond, 30*time.Second)
	took := time.Since(start)
	checkFull(t, events, got)
	// Starts at least the gap apart within the run: at most this many.
	starts := int(took/gap) + 1
	st := f.Stats()
	t.Logf("1,000 events about 100 objects in %v: %d fetches, %d coalesced (at most %d: one per object and gap)",
		took.Round(time.Millisecond), st.Fetches, st.Coalesced, 100*starts)
	if a.total() > 100*starts || int(st.Fetches) != a.total() || st.Fetches+st.Coalesced != 1000 {
		t.Errorf("%d GETs (%d fetches, %d coalesced) for 100 objects in %v", a.total(), st.Fetches, st.Coalesced, took)
	}
	for id, n := range a.gets {
		if n > starts {
			t.Errorf("%s fetched %d times in %v", id, n, took)
		}
	}
}

// An API that answers 500 or 429 to half the requests while 1,000 thin
// events arrive over three seconds (INTAKE_FETCH_FAULT_SECONDS sets
// another span: 60 for the minute of the issue) loses nothing: each
// failed fetch is a failed attempt, retried.
func TestFailingAPILosesNothing(t *testing.T) {
	span := 3 * time.Second
	if v, err := time.ParseDuration(os.Getenv("INTAKE_FETCH_FAULT_SECONDS") + "s"); err == nil && v > 0 {
		span = v
	}
	a := &api{gets: map[string]int{}}
	until := time.Now().Add(span)
	rng := rand.New(rand.NewPCG(1, 2))
	var rngMu sync.Mutex
	a.fail = func() (int, string) {
		rngMu.Lock()
		defer rngMu.Unlock()
		if time.Now().After(until) || rng.IntN(2) == 0 {
			return 0, ""
		}
		if rng.IntN(2) == 0 {
			return http.StatusTooManyRequests, "0"
		}
		return http.StatusInternalServerError, ""
	}
	srv := httptest.NewServer(a)
	defer srv.Close()
	f := fetch.New(object, fetch.HTTP(srv.Client(), nil), fetch.WithMinGap(0))
	var events []event.Event
	for i := range 1000 {
		events = append(events, thin(srv.URL, i, i%100))
	}
	var dead atomic.Int64
	got := runPaced(t, f, events, span/10, span+60*time.Second,
		intake.WithMaxAttempts(100), intake.WithRetryBackoff(5*time.Millisecond, 200*time.Millisecond),
		intake.WithDeadLetter(func(context.Context, intake.DeadLetter) { dead.Add(1) }))
	checkFull(t, events, got)
	st := f.Stats()
	t.Logf("1,000 events over %v with the API failing half the time: %d fetches, %d failed, %d coalesced, %d dead", span, st.Fetches, st.Errors, st.Coalesced, dead.Load())
	if st.Errors == 0 || dead.Load() != 0 {
		t.Errorf("%d failed fetches (want some), %d dead (want none)", st.Errors, dead.Load())
	}
}

// A 429 with Retry-After is waited out before the retry.
func TestRetryAfterIsWaitedOut(t *testing.T) {
	var mu sync.Mutex
	var at []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		at = append(at, time.Now())
		if len(at) == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, `{"id":"obj_000","full":true}`)
	}))
	defer srv.Close()
	f := fetch.New(object, fetch.HTTP(srv.Client(), nil))
	events := []event.Event{thin(srv.URL, 0, 0)}
	got := run(t, f, events, 10*time.Second, intake.WithRetryBackoff(time.Millisecond, 10*time.Second))
	checkFull(t, events, got)
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 2 {
		t.Fatalf("%d requests, want 2", len(at))
	}
	if gap := at[1].Sub(at[0]); gap < 900*time.Millisecond {
		t.Errorf("retried %v after a Retry-After of 1 s", gap)
	}
}

// An event about no object passes through as it is.
func TestCompleteEventsPassThrough(t *testing.T) {
	f := fetch.New(object, func(context.Context, fetch.Object) ([]byte, error) {
		t.Error("fetched for a complete event")
		return nil, nil
	})
	e := event.Event{Source: "api", ID: "evt_full", Payload: []byte(`{"id":"evt_full","data":{}}`)}
	got := run(t, f, []event.Event{e}, 5*time.Second)
	if len(got["evt_full"]) != 1 || string(got["evt_full"][0].Payload) != string(e.Payload) {
		t.Errorf("got %v", got)
	}
}

// WithMaxBody bounds what an HTTP fetch reads; over it, ErrTooLarge.
func TestHTTPMaxBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Repeat("x", 100))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		limit   int64
		tooLong bool
	}{{99, true}, {100, false}} {
		get := fetch.HTTP(srv.Client(), nil, fetch.WithMaxBody(tc.limit))
		body, err := get(context.Background(), fetch.Object{URL: srv.URL})
		if tc.tooLong != errors.Is(err, fetch.ErrTooLarge) || (!tc.tooLong && len(body) != 100) {
			t.Errorf("limit %d: %d bytes, %v", tc.limit, len(body), err)
		}
	}
}

// A 4xx answer (other than 408, 425 and 429) is permanent: the event is
// dead after one fetch, its dead letter classed so, instead of spending
// its attempts on an answer that will not change; 408, 425, 429 and 5xx
// are transient.
func TestClientErrorsArePermanent(t *testing.T) {
	for code, want := range map[int]event.Class{
		400: event.Permanent, 401: event.Permanent, 403: event.Permanent, 404: event.Permanent, 410: event.Permanent, 422: event.Permanent,
		408: event.Transient, 425: event.Transient, 429: event.Transient, 500: event.Transient, 502: event.Transient, 503: event.Transient,
	} {
		if got := event.ClassOf(fmt.Errorf("fetch x: %w", &fetch.StatusError{Code: code})); got != want {
			t.Errorf("HTTP %d: %s, want %s", code, got, want)
		}
	}

	a := &api{gets: map[string]int{}, fail: func() (int, string) { return http.StatusNotFound, "" }}
	srv := httptest.NewServer(a)
	defer srv.Close()
	f := fetch.New(object, fetch.HTTP(srv.Client(), nil), fetch.WithMinGap(0))
	s := intake.New(intake.WithLogger(quiet))
	dead := make(chan intake.DeadLetter, 1)
	s.Handle(f.Handle(func(context.Context, event.Event) error { return nil }), intake.WithMaxAttempts(10),
		intake.WithRetryBackoff(time.Millisecond, time.Millisecond),
		intake.WithDeadLetter(func(_ context.Context, d intake.DeadLetter) { dead <- d }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := intaketest.Put(ctx, s, thin(srv.URL, 1, 1)); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-dead:
		if d.Class != event.Permanent || d.Attempts != 1 {
			t.Fatalf("dead letter: class %s after %d attempts, want permanent after 1 (%v)", d.Class, d.Attempts, d.Err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a 404 did not dead-letter the event")
	}
	if n := a.total(); n != 1 {
		t.Fatalf("%d GETs, want 1", n)
	}
}
