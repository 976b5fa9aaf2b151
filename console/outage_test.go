package console_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/console"
	"github.com/intakehq/intake/dedupe"
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
