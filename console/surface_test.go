package console_test

// Regression tests for the console defects of issue #21 (items 10 to 14).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/console"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/webhook"
)

// deadStream runs a stream with n dead events of source "shop".
func deadStream(t *testing.T, n int, opts ...intake.Option) *intake.Stream {
	t.Helper()
	s := intake.New(append([]intake.Option{intake.WithLogger(quiet)}, opts...)...)
	s.Handle(func(context.Context, event.Event) error { return errors.New("no") }, intake.WithMaxAttempts(1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for i := range n {
		e := event.Event{Source: "shop", ID: "e" + string(rune('a'+i/26)) + string(rune('a'+i%26)), Type: "order.paid"}
		require.Eventually(t, func() bool { return s.Put(ctx, e) == nil }, 30*time.Second, time.Millisecond)
	}
	require.Eventually(t, func() bool {
		d, _ := s.List(ctx, dedupe.Filter{State: dedupe.Dead, Limit: 1000})
		return len(d) == n
	}, 10*time.Second, time.Millisecond)
	return s
}

var href = regexp.MustCompile(`href="([^"]*)"`)

// links returns the hrefs of a page, HTML-unescaped.
func links(page string) []string {
	var out []string
	for _, m := range href.FindAllStringSubmatch(page, -1) {
		out = append(out, strings.ReplaceAll(m[1], "&amp;", "&"))
	}
	return out
}

// Item 10: the list's next-page link and the overview's per-source link
// keep their filters, so paging moves on.
func TestLinksKeepTheirFilters(t *testing.T) {
	s := deadStream(t, 60)
	h := console.New(s, console.WithLogger(quiet))
	w := do(h, http.MethodGet, "/events?state=dead&source=shop", local, nil, nil)
	require.Equal(t, http.StatusOK, w.Code)
	var next string
	for _, l := range links(w.Body.String()) {
		if strings.HasPrefix(l, "events?") && strings.Contains(l, "after") {
			next = l
		}
	}
	require.NotEmpty(t, next, "a next-page link")
	assert.NotContains(t, next, "%3d", "the query is not escaped into one value")
	assert.Contains(t, next, "state=dead")
	assert.Contains(t, next, "source=shop")
	w2 := do(h, http.MethodGet, "/"+next, local, nil, nil)
	require.Equal(t, http.StatusOK, w2.Code)
	assert.NotEqual(t, w.Body.String(), w2.Body.String(), "the second page is not the first")
	assert.Equal(t, 10, strings.Count(w2.Body.String(), `class="dead">dead<`), "the second page holds the last 10")

	ov := do(h, http.MethodGet, "/", local, nil, nil).Body.String()
	assert.Contains(t, links(ov), "events?source=shop&state=all")
}

// Item 11: an unknown action is a request to fix (404), not an outage.
func TestUnknownActionIsNotFound(t *testing.T) {
	s := deadStream(t, 1)
	h := console.New(s, console.WithLogger(quiet))
	tok := do(h, http.MethodGet, "/api/token", local, nil, nil)
	var tv struct{ Token string }
	require.NoError(t, json.Unmarshal(tok.Body.Bytes(), &tv))
	w := do(h, http.MethodPost, "/api/events/4:shop:eaa/explode", local, nil, map[string]string{console.CSRFHeader: tv.Token})
	assert.Equal(t, http.StatusNotFound, w.Code, w.Body.String())
	assert.Contains(t, w.Body.String(), "replay or discard")
}

// Item 12: a webhook and a poller under one source name are one row in
// the overview and one source in the health, with both paths inside; the
// header's dead (dead now) and the row's (dead-lettered, ever) are named
// apart.
func TestOneRowPerSource(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet))
	hook := webhook.New("stripe", webhook.Stripe("whsec_x"), webhook.WithLogger(quiet))
	p := poller.New("stripe", poller.FetchFunc(func(context.Context, string) (poller.Page, error) { return poller.Page{}, nil }),
		poller.Every(time.Hour), poller.WithLogger(quiet))
	s.Add(hook, p)
	s.Handle(func(context.Context, event.Event) error { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	require.Eventually(t, func() bool { return s.Health().Running }, 30*time.Second, time.Millisecond)

	hl := s.Health()
	require.Len(t, hl.Sources, 1, "one source")
	var vias []string
	for _, path := range hl.Sources[0].Paths {
		vias = append(vias, path.Via)
	}
	assert.ElementsMatch(t, []string{"webhook", "poll"}, vias)

	page := do(console.New(s, console.WithLogger(quiet)), http.MethodGet, "/", local, nil, nil).Body.String()
	assert.Equal(t, 1, strings.Count(page, `<td><a href="events?source=stripe`), "one row for stripe")
	assert.Contains(t, page, "dead-lettered")
	assert.Contains(t, page, "dead now")
}

// Item 13: the console logs through the stream's logger by default.
func TestConsoleLogsThroughTheStream(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	s := deadStream(t, 1, intake.WithLogger(logger))
	h := console.New(s) // no WithLogger
	tok := do(h, http.MethodGet, "/api/token", local, nil, nil)
	var tv struct{ Token string }
	require.NoError(t, json.Unmarshal(tok.Body.Bytes(), &tv))
	w := do(h, http.MethodPost, "/api/events/4:shop:eaa/discard", local, nil, map[string]string{console.CSRFHeader: tv.Token})
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	assert.Contains(t, buf.String(), "console: discard")
}

// Item 14: the API's JSON is one documented shape: lower-case keys, the
// state and via as words, a JSON payload as JSON, absent times left out,
// numbers as numbers.
func TestAPIJSONShape(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet))
	s.Handle(func(context.Context, event.Event) error { return errors.New("no") }, intake.WithMaxAttempts(1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	e := event.Event{Source: "shop", ID: "j1", Type: "order.paid", Via: event.Webhook, Payload: []byte(`{"total":12}`)}
	require.Eventually(t, func() bool { return s.Put(ctx, e) == nil }, 30*time.Second, time.Millisecond)
	require.Eventually(t, func() bool {
		d, _ := s.List(ctx, dedupe.Filter{State: dedupe.Dead})
		return len(d) == 1
	}, 5*time.Second, time.Millisecond)
	h := console.New(s, console.WithLogger(quiet))

	var rec map[string]any
	require.NoError(t, json.Unmarshal(do(h, http.MethodGet, "/api/events/4:shop:j1", local, nil, nil).Body.Bytes(), &rec))
	assert.Equal(t, "dead", rec["state"])
	ev := rec["event"].(map[string]any)
	assert.Equal(t, "webhook", ev["via"])
	assert.Equal(t, "j1", ev["id"])
	assert.Equal(t, map[string]any{"total": float64(12)}, ev["payload"])
	assert.NotContains(t, ev, "time", "a zero time is left out")
	for _, k := range []string{"ID", "Via", "Payload", "Time"} {
		assert.NotContains(t, ev, k)
	}

	var ov map[string]any
	require.NoError(t, json.Unmarshal(do(h, http.MethodGet, "/api/overview", local, nil, nil).Body.Bytes(), &ov))
	assert.Equal(t, float64(1), ov["dead"], "dead is a number")
}

// A limit that is not a whole number above zero was ignored (a page of
// the default size, 50), where a bad state or after is a 400; and an
// empty page was "records": null for a JSON client.
func TestListQuery(t *testing.T) {
	s := deadStream(t, 3)
	h := console.New(s, console.WithLogger(quiet))
	for _, tt := range []struct {
		query string
		code  int
		n     int // records
	}{
		{"limit=2", http.StatusOK, 2},
		{"limit=5000", http.StatusOK, 3}, // at most 1,000 a page
		{"limit=abc", http.StatusBadRequest, 0},
		{"limit=0", http.StatusBadRequest, 0},
		{"limit=-1", http.StatusBadRequest, 0},
		{"state=queued", http.StatusOK, 0},
	} {
		r := do(h, http.MethodGet, "/api/events?"+tt.query, local, nil, nil)
		if r.Code != tt.code {
			t.Errorf("%s: %d %s; want %d", tt.query, r.Code, r.Body, tt.code)
			continue
		}
		var page map[string]any
		require.NoError(t, json.Unmarshal(r.Body.Bytes(), &page))
		if tt.code != http.StatusOK {
			assert.Contains(t, page["error"], "limit", tt.query)
			continue
		}
		recs, ok := page["records"].([]any)
		if !ok || len(recs) != tt.n {
			t.Errorf("%s: records %v; want a list of %d", tt.query, page["records"], tt.n)
		}
	}
	if r := do(h, http.MethodGet, "/events?limit=abc", local, nil, nil); r.Code != http.StatusBadRequest {
		t.Errorf("the page with limit=abc: %d; want 400", r.Code)
	}
}
