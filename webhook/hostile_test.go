package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

// countingReader is an endless body that counts what is read of it.
type countingReader struct{ n atomic.Int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// An endless chunked body is read only up to the limit.
func TestBodyReadStopsAtLimit(t *testing.T) {
	const limit = 64 << 10
	h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithMaxBody(limit), webhook.WithLogger(quiet))
	running(t, h, &recordingSink{}, githubProbe)
	body := &countingReader{}
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Body = io.NopCloser(body)
	r.ContentLength = -1
	for k, v := range webhook.SignGitHub(plainSec, "d", "push", []byte("x")) {
		r.Header[k] = v
	}
	rec := serve(h, r)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", rec.Code)
	}
	if n := body.n.Load(); n > limit+64<<10 {
		t.Fatalf("read %d bytes of an endless body with a %d-byte limit", n, limit)
	}
}

// The content type is not trusted: the signature covers the raw bytes,
// whatever the request says they are. (GitHub's form encoding is the one
// content type that changes the payload, after verification.)
func TestContentTypeIgnored(t *testing.T) {
	h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(quiet))
	sink := &recordingSink{}
	running(t, h, sink, githubProbe)
	for _, ct := range []string{"text/plain", "", "image/png", "application/json; charset=utf-8"} {
		r := githubRequest(plainSec, "ct-"+ct, deliveryBody("ct-"+ct))
		r.Header.Set("Content-Type", ct)
		if code := serve(h, r).Code; code != http.StatusAccepted {
			t.Errorf("Content-Type %q: %d, want 202", ct, code)
		}
	}
	// Said to be a form, and a form, but without a payload field: 400. (A
	// JSON object said to be a form is JSON: TestGitHubJSONWithCurlsContentType.)
	r := githubRequest(plainSec, "ct-form", []byte("zen=Design+for+failure"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if code := serve(h, r).Code; code != http.StatusBadRequest {
		t.Errorf("a form without a payload field: %d, want 400", code)
	}
}

// Logs name the source and the reason, never a secret, a signature or the
// body.
func TestLogsCarryNoSecrets(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	const secret = "topsecret-signing-key"
	payload := []byte(`{"card":"4242424242424242"}`)
	h := webhook.New("github", webhook.GitHub(secret), webhook.WithLogger(log))
	running(t, h, &recordingSink{}, func() *http.Request { return githubRequest(secret, "probe", []byte("probe")) })

	good := githubRequest(secret, "d-1", payload)
	sig := good.Header.Get("X-Hub-Signature-256")
	serve(h, good)
	serve(h, githubRequest("wrong", "d-2", payload)) // 401, logged
	bad := githubRequest(secret, "d-3", payload)
	bad.Header.Set("X-Hub-Signature-256", sig[:20]) // truncated
	serve(h, bad)

	mu.Lock()
	logs := buf.String()
	mu.Unlock()
	for _, leak := range []string{secret, strings.TrimPrefix(sig, "sha256="), "4242424242424242"} {
		if strings.Contains(logs, leak) {
			t.Errorf("logs contain %q:\n%s", leak, logs)
		}
	}
	var rejected int
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["msg"] == "webhook: request rejected" {
			rejected++
			if rec["source"] != "github" || rec["reason"] == nil || rec["reason"] == "" {
				t.Errorf("rejection record lacks source or reason: %v", rec)
			}
		}
	}
	if rejected != 2 {
		t.Errorf("%d rejections logged, want 2:\n%s", rejected, logs)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// 10,000 concurrent requests, 30% of them duplicates, against a handler on
// a real stream: each unique event is handled once, and no request gets a
// 5xx while the queue has room.
func TestConcurrentRequestsWithDuplicates(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 requests")
	}
	const total = 10_000
	s := intake.New(intake.WithLogger(quiet), intake.WithQueueSize(total))
	h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(quiet))
	s.Add(h)
	var mu sync.Mutex
	handled := map[string]int{}
	s.Handle(func(ctx context.Context, e event.Event) error {
		mu.Lock()
		handled[e.ID]++
		mu.Unlock()
		return nil
	}, intake.WithWorkers(4))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv := httptest.NewServer(h)
	defer srv.Close()
	for serve(h, githubRequest(plainSec, "warmup", body)).Code == http.StatusServiceUnavailable {
		time.Sleep(time.Millisecond)
	}

	unique := total * 7 / 10
	ids := make(chan string, total)
	for i := range total {
		ids <- fmt.Sprintf("d-%05d", i%unique) // the last 30% repeat the first
	}
	close(ids)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100, MaxConnsPerHost: 100}}
	var codes sync.Map
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				body := []byte(`{"delivery":"` + id + `"}`) // a provider's bodies differ
				req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
				req.Header = webhook.SignGitHub(plainSec, id, "push", body)
				resp, err := client.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				n, _ := codes.LoadOrStore(resp.StatusCode, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
	}
	wg.Wait()
	codes.Range(func(k, v any) bool {
		if k.(int) >= 500 {
			t.Errorf("%d requests got %d", v.(*atomic.Int64).Load(), k)
		}
		return true
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(handled)
		mu.Unlock()
		if n >= unique+1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	delete(handled, "warmup")
	if len(handled) != unique {
		t.Fatalf("%d of %d unique events handled", len(handled), unique)
	}
	for id, n := range handled {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
		}
	}
}

// A flood of bad requests is logged once a second per reason, with a count
// of what was left out; metrics still count each one.
func TestRejectionLogsAreSampled(t *testing.T) {
	var lines atomic.Int64
	log := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		if strings.Contains(string(p), "request rejected") {
			lines.Add(1)
		}
		return len(p), nil
	}), nil))
	h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(log))
	running(t, h, &recordingSink{}, githubProbe)
	for i := range 1000 {
		if code := serve(h, githubRequest("wrong", fmt.Sprint(i), body)).Code; code != http.StatusUnauthorized {
			t.Fatalf("status %d", code)
		}
	}
	if n := lines.Load(); n < 1 || n > 3 {
		t.Fatalf("%d log records for 1,000 rejections in well under 3 s", n)
	}
}

// During a store outage, 100 concurrent webhooks each get 503, and the
// store error is logged at most once a second, not once a request.
func TestStoreErrorLogsAreSampled(t *testing.T) {
	var lines atomic.Int64
	log := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		if strings.Contains(string(p), `"level":"ERROR"`) {
			lines.Add(1)
		}
		return len(p), nil
	}), nil))
	h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(log))
	running(t, h, &recordingSink{err: errors.New("dial tcp 10.0.0.5:5432: connection refused")}, githubProbe)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprint("outage-", i)
			if code := serve(h, githubRequest(plainSec, id, deliveryBody(id))).Code; code != http.StatusServiceUnavailable {
				t.Errorf("status %d, want 503", code)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	if n := lines.Load(); n < 1 || float64(n) > 2*max(1, secs) {
		t.Fatalf("%d error records for 100 requests in %.2f s", n, secs)
	}
}
