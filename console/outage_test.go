package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/console"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// downQueue is a durable queue whose database does not answer: every
// read fails as a connection refused does. The stream is never run, so
// the rest of the contract is never called.
type downQueue struct{ dedupe.Queue }

var errDown = errors.New("postgres: list: failed to connect to `127.0.0.1:5432`: connection refused")

func (downQueue) List(context.Context, dedupe.Filter) ([]dedupe.Record, error) {
	return nil, errDown
}
func (downQueue) Get(context.Context, string) (dedupe.Record, error) { return dedupe.Record{}, errDown }

// A store outage is ours, not the caller's: the lists answer 503 with
// Retry-After (the HTML page keeping its navigation), while a bad filter
// stays a 400. Issue #34, item 5.
func TestStoreOutageIsA503(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet), intake.WithQueue(downQueue{}))
	h := console.New(s, console.WithLogger(quiet))
	for _, tc := range []struct {
		target string
		want   int
	}{
		{"/events?state=dead", http.StatusServiceUnavailable},
		{"/events?state=all&source=shop", http.StatusServiceUnavailable},
		{"/api/events?state=dead", http.StatusServiceUnavailable},
		{"/events/1:shop:e1", http.StatusServiceUnavailable},
		{"/api/events/1:shop:e1", http.StatusServiceUnavailable},
		{"/events?state=nonsense", http.StatusBadRequest},
		{"/api/events?limit=0", http.StatusBadRequest},
	} {
		w := do(h, http.MethodGet, tc.target, local, nil, nil)
		if w.Code != tc.want {
			t.Errorf("GET %s: %d, want %d (%s)", tc.target, w.Code, tc.want, strings.TrimSpace(w.Body.String()))
			continue
		}
		if tc.want == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
			t.Errorf("GET %s: 503 without Retry-After", tc.target)
		}
		if tc.want == http.StatusServiceUnavailable && !strings.HasPrefix(tc.target, "/api/") {
			body := w.Body.String()
			nav := `href="events?state=dead"`
			if strings.HasPrefix(tc.target, "/events/") {
				nav = `href="../events?state=dead"`
			}
			if !strings.Contains(body, nav) || !strings.Contains(body, "connection refused") {
				t.Errorf("GET %s: the outage page lacks its navigation or the cause:\n%s", tc.target, body)
			}
		}
	}
}

// Issue #34, item 13: an event keyed by its body's hash (a guarded
// scheme) is found by its source and provider id, in the API and the
// HTML list.
func TestFindByProviderID(t *testing.T) {
	s := deadStream(t, 0)
	<-s.Started()
	e := event.Event{Source: "github", ID: "d-1", Type: "push", Meta: map[string]string{event.MetaDedupe: "body:ed06"}}
	require.NoError(t, s.Put(context.Background(), e))
	require.Eventually(t, func() bool {
		d, _ := s.List(context.Background(), dedupe.Filter{State: dedupe.Dead, Source: "github"})
		return len(d) == 1
	}, 30*time.Second, time.Millisecond)
	h := console.New(s, console.WithLogger(quiet))
	w := do(h, http.MethodGet, "/api/events?state=all&source=github&id=d-1", local, nil, nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var page struct{ Records []dedupe.Record }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &page))
	require.Len(t, page.Records, 1)
	assert.Equal(t, e.Key(), page.Records[0].Key)
	assert.NotEqual(t, event.Key("github", "d-1"), page.Records[0].Key, "the key is the body's, not the id's")
	w = do(h, http.MethodGet, "/events?state=dead&id=d-1", local, nil, nil)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), ">d-1<")
	w = do(h, http.MethodGet, "/api/events?state=all&source=github&id=d-2", local, nil, nil)
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &page))
	assert.Empty(t, page.Records)
}

func TestFilterByTenant(t *testing.T) {
	s := deadStream(t, 0)
	<-s.Started()
	for _, tenant := range []string{"acme", "globex"} {
		e := event.Event{Source: "stripe", ID: "evt_1", Type: "invoice.paid", Meta: map[string]string{event.MetaTenant: tenant}}
		require.NoError(t, s.Put(context.Background(), e))
	}
	require.Eventually(t, func() bool {
		d, _ := s.List(context.Background(), dedupe.Filter{State: dedupe.Dead, Source: "stripe"})
		return len(d) == 2
	}, 30*time.Second, time.Millisecond)
	h := console.New(s, console.WithLogger(quiet))
	w := do(h, http.MethodGet, "/api/events?state=all&tenant=globex", local, nil, nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	var page struct{ Records []dedupe.Record }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &page))
	require.Len(t, page.Records, 1)
	assert.Equal(t, "@6:globex:6:stripe:evt_1", page.Records[0].Key)
	w = do(h, http.MethodGet, "/events?state=dead&tenant=acme", local, nil, nil)
	require.Equal(t, http.StatusOK, w.Code)
	assert.Contains(t, w.Body.String(), "<td>acme</td>")
	assert.NotContains(t, w.Body.String(), "<td>globex</td>")
}
