package intake_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/leak"
	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/webhook"
)

// tally is a metric.Recorder that counts by name and source.
type tally struct {
	mu sync.Mutex
	n  map[string]int64
}

func (t *tally) Count(name, source, reason string, d int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n[name+"/"+source] += d
}
func (t *tally) Gauge(string, string, float64) {}
func (t *tally) Observe(name, source string, _ time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n[name+"/"+source]++
}
func (t *tally) get(k string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n[k]
}

// The stream's recorder reaches the webhooks and pollers added to it
// that were given none of their own; one given its own keeps it. Issue
// #34, item 9: a new user's 401s never reached /metrics.
func TestStreamMetricsReachItsSources(t *testing.T) {
	leak.Check(t)
	streams, own := &tally{n: map[string]int64{}}, &tally{n: map[string]int64{}}
	s := intake.New(intake.WithLogger(quiet), intake.WithMetrics(streams))
	hook := webhook.New("github", webhook.GitHub("s3cret"), webhook.WithLogger(quiet))
	mine := webhook.New("stripe", webhook.Stripe("whsec_x"), webhook.WithLogger(quiet), webhook.WithMetrics(own))
	polled := make(chan struct{}, 100)
	p := poller.New("api", poller.FetchFunc(func(context.Context, string) (poller.Page, error) {
		select {
		case polled <- struct{}{}:
		default:
		}
		return poller.Page{}, nil
	}), poller.Every(10*time.Millisecond), poller.WithLogger(quiet))
	s.Add(hook, mine, p)
	s.Handle(func(context.Context, event.Event) error { return nil })
	run(t, s)
	for _, h := range []http.Handler{hook, mine} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{}`))
		r.Header.Set("X-Hub-Signature-256", "sha256=00")
		r.Header.Set("Stripe-Signature", "t=1,v1=00")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("a bad signature: %d", w.Code)
		}
	}
	for range 2 {
		select {
		case <-polled:
		case <-time.After(30 * time.Second):
			t.Fatal("the poller did not poll")
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for streams.get(metric.Polls+"/api") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	for k, want := range map[string]bool{
		metric.Received + "/github":   true, // the stream's recorder, for the webhook without its own
		metric.AckLatency + "/github": true,
		metric.Polls + "/api":         true, // and for the poller
		metric.Received + "/stripe":   false,
	} {
		if got := streams.get(k) > 0; got != want {
			t.Errorf("the stream's recorder has %s: %v, want %v", k, got, want)
		}
	}
	if own.get(metric.Received+"/stripe") != 1 {
		t.Errorf("the webhook's own recorder: %v", own.n)
	}
}
