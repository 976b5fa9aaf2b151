package console_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/console"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fetch"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// setup runs a stream whose handler fails until fixed, with one dead
// event whose payload holds a script and whose kept headers hold a
// signature.
func setup(t *testing.T) (*intake.Stream, *console.Handler, *atomic.Bool, *atomic.Int64) {
	t.Helper()
	s := intake.New(intake.WithLogger(quiet))
	var fixed atomic.Bool
	var handled atomic.Int64
	s.Handle(func(ctx context.Context, e event.Event) error {
		if !fixed.Load() {
			return errors.New("boom <b>bold</b>")
		}
		handled.Add(1)
		return nil
	}, intake.WithMaxAttempts(1), intake.WithName("orders"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	e := event.Event{Source: "shop", ID: "evt_1", Type: "order.paid",
		Payload: []byte(`{"note":"<script>alert(1)</script>"}`),
		Meta:    map[string]string{"header:X-Hub-Signature-256": "sha256=SIGNATURE-SHOULD-NOT-SHOW", "content-type": "application/json"}}
	require.Eventually(t, func() bool { return s.Put(ctx, e) == nil }, 30*time.Second, time.Millisecond)
	if !assert.Eventually(t, func() bool {
		d, _ := s.List(ctx, dedupe.Filter{State: dedupe.Dead})
		return len(d) == 1
	}, 5*time.Second, time.Millisecond) {
		all, _ := s.List(ctx, dedupe.Filter{})
		t.Fatalf("not dead: %+v\nhealth %+v\nstats %+v", all, s.Health(), s.Stats())
	}
	return s, console.New(s, console.WithLogger(quiet)), &fixed, &handled
}

func do(h http.Handler, method, target, remote string, body url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	var r *http.Request
	if body != nil {
		r = httptest.NewRequest(method, target, strings.NewReader(body.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	r.RemoteAddr = remote
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

const local = "127.0.0.1:50000"

func TestPages(t *testing.T) {
	_, h, fixed, handled := setup(t)
	key := event.Key("shop", "evt_1")
	w := do(h, "GET", "/", local, nil, nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Contains(t, w.Body.String(), "1 dead")
	assert.Contains(t, w.Body.String(), ">shop<")
	w = do(h, "GET", "/events?state=dead", local, nil, nil)
	assert.Contains(t, w.Body.String(), "evt_1")
	assert.Contains(t, w.Body.String(), "boom &lt;b&gt;bold&lt;/b&gt;")
	w = do(h, "GET", "/events/"+url.PathEscape(key), local, nil, nil)
	require.Equal(t, http.StatusOK, w.Code)
	page := w.Body.String()
	csrf := between(page, `name="csrf" value="`, `"`)
	require.NotEmpty(t, csrf)

	// The list shows when each event died.
	assert.Regexp(t, `<td class="when">\d\d:\d\d:\d\d</td>`, do(h, "GET", "/events?state=dead", local, nil, nil).Body.String())

	fixed.Store(true)
	w = do(h, "POST", "/events/"+url.PathEscape(key)+"/replay", local, url.Values{"csrf": {csrf}}, nil)
	assert.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	require.Eventually(t, func() bool { return handled.Load() == 1 }, 5*time.Second, time.Millisecond)

	// Handled: the page says so, and when, while the key is kept.
	require.Eventually(t, func() bool {
		return strings.Contains(do(h, "GET", "/events/"+url.PathEscape(key), local, nil, nil).Body.String(), `id="handled"`)
	}, 5*time.Second, time.Millisecond)
	page = do(h, "GET", "/events/"+url.PathEscape(key), local, nil, nil).Body.String()
	assert.Contains(t, page, "Subscriptions of this stream: orders.")
	assert.Contains(t, page, "The key is kept until")
	api := do(h, "GET", "/api/events/"+url.PathEscape(key), local, nil, nil)
	assert.Equal(t, http.StatusNotFound, api.Code)
	assert.Contains(t, api.Body.String(), `"kept_until"`)
	never := do(h, "GET", "/events/"+url.PathEscape(event.Key("shop", "never")), local, nil, nil).Body.String()
	assert.Contains(t, never, `id="gone"`, "a key never seen is not handled")
	assert.NotContains(t, never, `id="handled"`)
}

// Discard asks once more before it forgets an event.
func TestDiscardConfirms(t *testing.T) {
	s, h, _, _ := setup(t)
	key := url.PathEscape(event.Key("shop", "evt_1"))
	page := do(h, "GET", "/events/"+key, local, nil, nil).Body.String()
	csrf := between(page, `name="csrf" value="`, `"`)
	w := do(h, "POST", "/events/"+key+"/discard", local, url.Values{"csrf": {csrf}}, nil)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), `id="confirm-discard"`)
	assert.Contains(t, w.Body.String(), `name="confirm" value="yes"`)
	_, err := s.Get(context.Background(), event.Key("shop", "evt_1"))
	require.NoError(t, err, "not discarded before the confirmation")
	w = do(h, "POST", "/events/"+key+"/discard", local, url.Values{"csrf": {csrf}, "confirm": {"yes"}}, nil)
	require.Equal(t, http.StatusSeeOther, w.Code, w.Body.String())
	_, err = s.Get(context.Background(), event.Key("shop", "evt_1"))
	assert.ErrorIs(t, err, dedupe.ErrNotFound)
}

func between(s, from, to string) string {
	_, rest, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, to)
	return v
}

func TestSecurity(t *testing.T) {
	_, h, _, _ := setup(t)
	key := url.PathEscape(event.Key("shop", "evt_1"))

	// Not from loopback, no authorization function: refused.
	assert.Equal(t, http.StatusForbidden, do(h, "GET", "/", "203.0.113.7:4242", nil, nil).Code)
	assert.Equal(t, http.StatusForbidden, do(h, "GET", "/api/events", "[2001:db8::1]:4242", nil, nil).Code)
	authorized := console.New(intake.New(), console.WithAuthorize(func(r *http.Request) bool { return r.Header.Get("X-User") == "ops" }))
	assert.Equal(t, http.StatusForbidden, do(authorized, "GET", "/", local, nil, nil).Code, "the function decides, loopback or not")
	assert.Equal(t, http.StatusOK, do(authorized, "GET", "/", "203.0.113.7:4242", nil, map[string]string{"X-User": "ops"}).Code)

	// Actions without the CSRF token: refused, nothing done.
	assert.Equal(t, http.StatusForbidden, do(h, "POST", "/events/"+key+"/discard", local, url.Values{}, nil).Code)
	assert.Equal(t, http.StatusForbidden, do(h, "POST", "/events/"+key+"/discard", local, url.Values{"csrf": {"guess"}}, nil).Code)
	assert.Equal(t, http.StatusForbidden, do(h, "POST", "/api/events/"+key+"/discard", local, nil, nil).Code)
	assert.Equal(t, http.StatusOK, do(h, "GET", "/api/events/"+key, local, nil, nil).Code, "still there")

	// The payload's script is inert; the kept signature header is never shown.
	for _, target := range []string{"/events/" + key, "/api/events/" + key, "/api/events?state=dead", "/events?state=dead"} {
		body := do(h, "GET", target, local, nil, nil).Body.String()
		assert.NotContains(t, body, "<script>", target)
		assert.NotContains(t, body, "SIGNATURE-SHOULD-NOT-SHOW", target)
		assert.NotContains(t, body, "X-Hub-Signature", target)
	}
	page := do(h, "GET", "/events/"+key, local, nil, nil).Body.String()
	assert.Contains(t, page, "&lt;script&gt;alert(1)&lt;/script&gt;")

	// The API with its token acts.
	var tok struct{ Token string }
	tokBody := do(h, "GET", "/api/token", local, nil, nil).Body.String()
	tok.Token = between(tokBody, `"token": "`, `"`)
	w := do(h, "POST", "/api/events/"+key+"/discard", local, nil, map[string]string{console.CSRFHeader: tok.Token})
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Equal(t, http.StatusNotFound, do(h, "GET", "/api/events/"+key, local, nil, nil).Code)
}

// A readiness banner shows while the stream is not ready.
func TestReadinessBanner(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet))
	s.Subscribe()
	h := console.New(s)
	assert.Contains(t, do(h, "GET", "/", local, nil, nil).Body.String(), `id="readiness"`, "not running yet")
}

// A fetch.Fetcher given the stream's Metrics shows its counts in the
// overview and in the API's stats, by source.
func TestOverviewShowsFetches(t *testing.T) {
	s, h, _, _ := setup(t)
	f := fetch.New(func(e event.Event) (fetch.Object, bool) { return fetch.Object{ID: "obj"}, true },
		func(context.Context, fetch.Object) ([]byte, error) { return []byte(`{}`), nil }, fetch.WithMetrics(s.Metrics()))
	arrived := time.Now() // three events that arrived before the first fetch: one fetch serves them
	for range 3 {
		if _, err := f.Fetch(context.Background(), "shop", fetch.Object{ID: "obj"}, arrived); err != nil {
			t.Fatal(err)
		}
	}
	w := do(h, http.MethodGet, "/", "127.0.0.1:1", nil, nil)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), "2 coalesced")
	var shop intake.SourceStats
	for _, st := range s.Stats() {
		if st.Name == "shop" {
			shop = st
		}
	}
	assert.Equal(t, int64(1), shop.Fetches)
	assert.Equal(t, int64(2), shop.Coalesced)
}

// Events skipped as stale (intake.WithSkipStale) are counted in the
// overview, beside the dead letters of their source.
func TestOverviewShowsStaleSkips(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet), intake.WithOrderKey(func(event.Event) string { return "obj" }),
		intake.WithVersion(func(e event.Event) (int64, bool) { v, err := strconv.ParseInt(e.ID, 10, 64); return v, err == nil }))
	handled := make(chan string, 3)
	s.Handle(func(_ context.Context, e event.Event) error { handled <- e.ID; return nil }, intake.WithSkipStale())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-s.Started()
	for _, id := range []string{"5", "7", "6"} {
		require.NoError(t, s.Put(ctx, event.Event{Source: "shop", ID: id}))
	}
	<-handled
	<-handled
	deadline := time.Now().Add(10 * time.Second)
	for {
		body := do(console.New(s), http.MethodGet, "/", "127.0.0.1:1", nil, nil).Body.String()
		if strings.Contains(body, "1 skipped as stale") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the overview does not show the stale skip:\n%s", body)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
