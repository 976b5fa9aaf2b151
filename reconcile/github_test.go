package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
)

// fakeGitHub serves a hook's deliveries as GitHub does (newest first,
// per_page and a cursor, a Link to the next page) and records the
// redeliveries asked for.
type fakeGitHub struct {
	mu          sync.Mutex
	deliveries  []map[string]any // newest first
	redelivered []int64
	url         string
}

func (f *fakeGitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer ghp_test" || r.Header.Get("X-GitHub-Api-Version") == "" {
		http.Error(w, "bad credentials", http.StatusUnauthorized)
		return
	}
	const hook = "/repos/octo/app/hooks/12"
	switch {
	case r.Method == http.MethodGet && r.URL.Path == hook+"/deliveries":
		per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		from, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		to := min(from+per, len(f.deliveries))
		if to < len(f.deliveries) {
			w.Header().Set("Link", fmt.Sprintf(`<%s%s/deliveries?per_page=%d&cursor=%d>; rel="next"`, f.url, hook, per, to))
		}
		_ = json.NewEncoder(w).Encode(f.deliveries[from:to])
	case r.Method == http.MethodPost:
		var id int64
		if _, err := fmt.Sscanf(r.URL.Path, hook+"/deliveries/%d/attempts", &id); err != nil {
			http.NotFound(w, r)
			return
		}
		f.redelivered = append(f.redelivered, id)
		w.WriteHeader(http.StatusAccepted)
	default:
		http.NotFound(w, r)
	}
}

// The failed guids of the last day are redelivered once, by their latest
// attempt: not one that later succeeded, not one older than the window;
// the next run starts where this one did.
func TestGitHubRedeliversFailedDeliveries(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) string { return now.Add(-ago).Format(time.RFC3339) }
	gh := &fakeGitHub{deliveries: []map[string]any{
		{"id": 9, "guid": "A", "delivered_at": at(time.Minute), "status_code": 200},     // A: failed, then OK
		{"id": 8, "guid": "B", "delivered_at": at(2 * time.Minute), "status_code": 502}, // B: failed twice: redeliver 8
		{"id": 7, "guid": "C", "delivered_at": at(3 * time.Minute), "status_code": 200},
		{"id": 6, "guid": "A", "delivered_at": at(4 * time.Minute), "status_code": 500},
		{"id": 5, "guid": "B", "delivered_at": at(5 * time.Minute), "status_code": 0},   // timed out
		{"id": 4, "guid": "E", "delivered_at": at(6 * time.Minute), "status_code": 404}, // E: redeliver 4
		{"id": 3, "guid": "D", "delivered_at": at(30 * time.Hour), "status_code": 500},  // older than the lookback
	}}
	srv := httptest.NewServer(gh)
	defer srv.Close()
	gh.url = srv.URL
	clock := now
	f := GitHubRedeliver("/repos/octo/app/hooks/12", "ghp_test", WithGitHubBaseURL(srv.URL), withGitHubPage(2, func() time.Time { return clock }))
	pg, err := f.Fetch(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	gh.mu.Lock()
	got := slices.Clone(gh.redelivered)
	gh.mu.Unlock()
	slices.Sort(got)
	if !slices.Equal(got, []int64{4, 8}) {
		t.Errorf("redelivered %v, want [4 8]", got)
	}
	if len(pg.Events) != 0 || pg.Next != now.Format(time.RFC3339Nano) {
		t.Errorf("page %+v", pg)
	}
	// The next run looks only at what came after this one began.
	clock = now.Add(time.Minute)
	if _, err := f.Fetch(context.Background(), pg.Next); err != nil {
		t.Fatal(err)
	}
	gh.mu.Lock()
	defer gh.mu.Unlock()
	if len(gh.redelivered) != 2 {
		t.Errorf("the second run redelivered %v again", gh.redelivered[2:])
	}
}

// A refused redelivery fails the run, so that the poller does it again
// from the same cursor.
func TestGitHubRedeliveryRefusedKeepsTheCursor(t *testing.T) {
	now := time.Now().UTC()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Retry-After", "7")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return
		}
		_ = json.NewEncoder(w).Encode([]map[string]any{{"id": 1, "guid": "X", "delivered_at": now.Add(-time.Minute).Format(time.RFC3339), "status_code": 500}})
	}))
	defer srv.Close()
	f := GitHubRedeliver("/app/hook", "jwt", WithGitHubBaseURL(srv.URL))
	_, err := f.Fetch(context.Background(), "")
	if err == nil {
		t.Fatal("a refused redelivery did not fail the run")
	}
	if d, ok := event.RetryDelay(err); !ok || d != 7*time.Second {
		t.Errorf("error %v carries delay %v, %v; want 7 s", err, d, ok)
	}
}

// GitHub reports delivered_at to the second. A delivery that failed in
// the same second as a run began (…:56Z, the run at …:56.05) is looked at
// by the next run: issue #34, item 2.
func TestGitHubRedeliverySameSecondAsTheRun(t *testing.T) {
	run1 := time.Date(2026, 12, 4, 12, 0, 56, 50_000_000, time.UTC) // …:56.05
	gh := &fakeGitHub{}
	srv := httptest.NewServer(gh)
	defer srv.Close()
	gh.url = srv.URL
	clock := run1
	f := GitHubRedeliver("/repos/octo/app/hooks/12", "ghp_test", WithGitHubBaseURL(srv.URL), withGitHubPage(10, func() time.Time { return clock }))
	pg, err := f.Fetch(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	// The delivery failed while the first run was listing: GitHub stamps
	// it …:56Z, before the run's start to the nanosecond.
	gh.mu.Lock()
	gh.deliveries = []map[string]any{
		{"id": 21, "guid": "F", "delivered_at": "2026-12-04T12:00:56Z", "status_code": 502},
		{"id": 20, "guid": "G", "delivered_at": "2026-12-04T12:00:55Z", "status_code": 502}, // before the run: the first run's
	}
	gh.mu.Unlock()
	clock = run1.Add(time.Minute)
	if _, err := f.Fetch(context.Background(), pg.Next); err != nil {
		t.Fatal(err)
	}
	gh.mu.Lock()
	defer gh.mu.Unlock()
	if !slices.Equal(gh.redelivered, []int64{21}) {
		t.Errorf("the second run redelivered %v, want [21] (the failure in the first run's second)", gh.redelivered)
	}
}

// GitHubRedeliver runs apart from any stream: a poller whose sink is never
// called (it puts no event), asking GitHub to redeliver.
func TestGitHubRedeliverRunsAlone(t *testing.T) {
	gh := &fakeGitHub{deliveries: []map[string]any{
		{"id": 3, "guid": "Z", "delivered_at": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), "status_code": 500},
	}}
	srv := httptest.NewServer(gh)
	defer srv.Close()
	gh.url = srv.URL
	p := poller.New("github", GitHubRedeliver("/repos/octo/app/hooks/12", "ghp_test", WithGitHubBaseURL(srv.URL)),
		poller.Every(time.Hour), poller.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, sinkFunc(func(event.Event) { t.Error("the sink was called") })) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		gh.mu.Lock()
		n := len(gh.redelivered)
		gh.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no redelivery asked for")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type sinkFunc func(event.Event)

func (f sinkFunc) Put(_ context.Context, e event.Event) error { f(e); return nil }
