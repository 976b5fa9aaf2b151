package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// recordingSink answers Put with a fixed error and records the events it
// accepts.
type recordingSink struct {
	mu     sync.Mutex
	events []event.Event
	err    error
}

func (s *recordingSink) Put(_ context.Context, e event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.events = append(s.events, e)
	}
	return s.err
}

// running runs h with sink until the test ends. It waits until Run has
// started by sending probe requests, which must verify under h and carry
// the id "probe"; the sink does not see them. A probe is answered 2xx once
// Run has started, 503 before.
func running(t *testing.T, h *webhook.Handler, sink event.Sink, probe func() *http.Request) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	wrapped := event.SinkFunc(func(ctx context.Context, e event.Event) error {
		if e.ID == "probe" {
			return nil
		}
		return sink.Put(ctx, e)
	})
	go func() { done <- h.Run(ctx, wrapped) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	require.Eventually(t, func() bool {
		c := serve(h, probe()).Code
		return c >= 200 && c < 300 // 202, or a scheme's own answer (Discord's 200)
	}, 30*time.Second, time.Millisecond)
}

func githubProbe() *http.Request { return githubRequest(plainSec, "probe", []byte("probe")) }

func githubRequest(secret, id string, b []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(b))
	for k, v := range webhook.SignGitHub(secret, id, "push", b) {
		r.Header[k] = v
	}
	return r
}

// deliveryBody is a body of a delivery's own: a provider's bodies differ
// from one event to the next (the replay guard counts on it).
func deliveryBody(id string) []byte { return []byte(`{"delivery":"` + id + `"}`) }

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func TestHandlerStatuses(t *testing.T) {
	b := []byte(`{"zen":"Keep it logically awesome."}`)
	tests := []struct {
		name       string
		sinkErr    error
		req        func() *http.Request
		want       int
		retryAfter string
	}{
		{"accepted", nil, func() *http.Request { return githubRequest(plainSec, "d1", b) }, 202, ""},
		{"already done", event.ErrDuplicate, func() *http.Request { return githubRequest(plainSec, "d1", b) }, 200, ""},
		{"pending elsewhere", event.RetryAfter(3*time.Second, event.ErrPending), func() *http.Request { return githubRequest(plainSec, "d1", b) }, 409, "3"},
		{"queue full", event.RetryAfter(1500*time.Millisecond, event.ErrQueueFull), func() *http.Request { return githubRequest(plainSec, "d1", b) }, 503, "2"},
		{"store down", errors.New("connection refused"), func() *http.Request { return githubRequest(plainSec, "d1", b) }, 503, "1"},
		{"stream closed", event.RetryAfter(time.Second, event.ErrClosed), func() *http.Request { return githubRequest(plainSec, "d1", b) }, 503, "1"},
		{"GET", nil, func() *http.Request { return httptest.NewRequest(http.MethodGet, "/", nil) }, 405, ""},
		{"wrong secret", nil, func() *http.Request { return githubRequest(otherSec, "d1", b) }, 401, ""},
		{"no signature", nil, func() *http.Request {
			r := githubRequest(plainSec, "d1", b)
			r.Header.Del("X-Hub-Signature-256")
			return r
		}, 401, ""},
		{"no delivery id", nil, func() *http.Request {
			r := githubRequest(plainSec, "d1", b)
			r.Header.Del("X-GitHub-Delivery")
			return r
		}, 400, ""},
		{"body over limit by Content-Length", nil, func() *http.Request {
			return githubRequest(plainSec, "d1", bytes.Repeat([]byte("a"), 2048))
		}, 413, ""},
		{"chunked body over limit", nil, func() *http.Request {
			r := githubRequest(plainSec, "d1", bytes.Repeat([]byte("a"), 2048))
			r.ContentLength = -1
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("a"), 2048))))
			return r
		}, 413, ""},
		{"chunked body within limit", nil, func() *http.Request {
			r := githubRequest(plainSec, "d1", b)
			r.ContentLength = -1
			r.Body = io.NopCloser(bytes.NewReader(b))
			return r
		}, 202, ""},
		{"body longer than Content-Length", nil, func() *http.Request {
			r := githubRequest(plainSec, "d1", b)
			r.ContentLength = 5
			r.Body = io.NopCloser(bytes.NewReader(b))
			return r
		}, 400, ""},
		{"client gone mid-body", nil, func() *http.Request {
			r := githubRequest(plainSec, "d1", b)
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b[:5]), errReader{}))
			return r
		}, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &recordingSink{err: tt.sinkErr}
			h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithMaxBody(1024), webhook.WithLogger(quiet))
			running(t, h, sink, githubProbe)
			sink.mu.Lock()
			sink.events = nil
			sink.mu.Unlock()

			rec := serve(h, tt.req())
			assert.Equal(t, tt.want, rec.Code, rec.Body.String())
			assert.Equal(t, tt.retryAfter, rec.Header().Get("Retry-After"))
			if tt.want == http.StatusMethodNotAllowed {
				assert.Equal(t, "POST", rec.Header().Get("Allow"))
			}
			sink.mu.Lock()
			defer sink.mu.Unlock()
			if tt.want == http.StatusAccepted {
				require.Len(t, sink.events, 1)
				e := sink.events[0]
				assert.Equal(t, "github", e.Source)
				assert.Equal(t, event.Webhook, e.Via)
				assert.Equal(t, "d1", e.ID)
				assert.False(t, e.Received.IsZero())
				assert.Equal(t, b, e.Payload)
			} else {
				assert.Empty(t, sink.events, "nothing stored for a %d", tt.want)
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestHandlerNotRunning(t *testing.T) {
	h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(quiet))
	rec := serve(h, githubRequest(plainSec, "d1", body))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
}

func TestHandlerRunTwice(t *testing.T) {
	h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(quiet))
	running(t, h, &recordingSink{}, githubProbe)
	assert.ErrorIs(t, h.Run(context.Background(), &recordingSink{}), webhook.ErrAlreadyRunning)
}

func TestHandlerSlackChallenge(t *testing.T) {
	h := webhook.New("slack", webhook.Slack(plainSec), webhook.WithLogger(quiet))
	sink := &recordingSink{}
	running(t, h, sink, func() *http.Request {
		b := []byte(`{"event_id":"probe"}`)
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))
		for k, v := range webhook.SignSlack(plainSec, time.Now(), b) {
			r.Header[k] = v
		}
		return r
	})
	b := []byte(`{"token":"x","challenge":"abc123","type":"url_verification"}`)
	r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))
	for k, v := range webhook.SignSlack(plainSec, time.Now(), b) {
		r.Header[k] = v
	}
	rec := serve(h, r)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "abc123", rec.Body.String())
	assert.Empty(t, sink.events)
}

func TestHandlerHoldOnFull(t *testing.T) {
	var calls atomic.Int64
	sink := event.SinkFunc(func(ctx context.Context, e event.Event) error {
		if e.ID == "d1" && calls.Add(1) < 3 {
			return event.RetryAfter(time.Second, event.ErrQueueFull)
		}
		return nil
	})
	h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(quiet), webhook.WithHoldOnFull(time.Second))
	running(t, h, sink, githubProbe)
	rec := serve(h, githubRequest(plainSec, "d1", body))
	assert.Equal(t, http.StatusAccepted, rec.Code)
	assert.Equal(t, int64(3), calls.Load())
}

// With a real stream whose subscriber never acks, webhooks are still
// acknowledged (the handler does not wait for subscribers) until the queue
// is full; then they get 503 and nothing is recorded, and the same events
// are accepted once room frees up.
func TestHandlerWithStreamBackpressure(t *testing.T) {
	const queue = 20
	s := intake.New(intake.WithLogger(quiet), intake.WithQueueSize(queue), intake.WithDrainTimeout(10*time.Millisecond))
	h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(quiet))
	s.Add(h)
	deliveries := s.Subscribe()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	require.Eventually(t, func() bool {
		return serve(h, githubRequest(plainSec, "warmup", body)).Code == http.StatusAccepted
	}, 30*time.Second, time.Millisecond)

	codes := map[int]int{}
	for i := range queue + 10 {
		codes[serve(h, githubRequest(plainSec, fmt.Sprint("d", i), deliveryBody(fmt.Sprint("d", i)))).Code]++
	}
	assert.Equal(t, map[int]int{202: queue - 1, 503: 11}, codes)

	// Ack everything received so far; the rejected ones are accepted on
	// retry, once the commits have freed the room (a 503 is retried, as a
	// provider would).
	for range queue {
		(<-deliveries).Ack()
	}
	codes = map[int]int{}
	for i := range queue + 10 {
		code := http.StatusServiceUnavailable
		for deadline := time.Now().Add(time.Second); code == http.StatusServiceUnavailable && time.Now().Before(deadline); {
			code = serve(h, githubRequest(plainSec, fmt.Sprint("d", i), deliveryBody(fmt.Sprint("d", i)))).Code
		}
		codes[code]++
	}
	assert.Equal(t, map[int]int{200: queue - 1, 202: 11}, codes)

	cancel()
	go func() {
		for range deliveries {
		}
	}()
	require.NoError(t, <-done)
}
