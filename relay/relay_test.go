package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/leak"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/relay"
	"github.com/intakehq/intake/webhook"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const secret = "It's a Secret to Everybody"

func get(t *testing.T, h http.Handler, query, token string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/feed"+query, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// End to end on loopback: a provider's signed webhooks reach a relay; a
// consumer with no listening socket gets them by long-polling with its
// poller, each once, payload byte-exact and the signature headers kept, so
// that it can verify the provider's signature itself.
func TestEndToEnd(t *testing.T) {
	leak.Check(t)
	feed := &relay.MemoryFeed{}
	rl := relay.New(feed, 0)
	public := intake.New(intake.WithLogger(quiet))
	hook := webhook.New("github", webhook.GitHub(secret), webhook.WithLogger(quiet), webhook.WithKeepHeaders())
	public.Add(hook)
	public.Handle(rl.Store)
	mux := http.NewServeMux()
	mux.Handle("POST /hooks/github", hook)
	mux.Handle("GET /feed", relay.NewHandler(feed, []string{"t0k3n"}, relay.WithLogger(quiet)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	consumer := intake.New(intake.WithLogger(quiet))
	fetch := relay.NewFetcher(srv.URL+"/feed", "t0k3n", relay.WithWait(2*time.Second))
	consumer.Add(poller.New("relay", fetch, poller.LongPoll(), poller.KeepSource(), poller.WithLogger(quiet)))
	var mu sync.Mutex
	got := map[string]event.Event{}
	consumer.Handle(func(ctx context.Context, e event.Event) error {
		mu.Lock()
		got[e.ID] = e
		mu.Unlock()
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range []*intake.Stream{public, consumer} {
		wg.Add(1)
		go func() { defer wg.Done(); assert.NoError(t, s.Run(ctx)) }()
	}
	defer func() { cancel(); wg.Wait() }()

	bodies := map[string][]byte{}
	for i := range 20 {
		id := fmt.Sprint("d-", i)
		body := []byte(fmt.Sprintf("{ \"delivery\": %q,\n  \"n\": %d }", id, i)) // spaces and a newline: kept as sent
		bodies[id] = body
		for {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/github", bytes.NewReader(body))
			req.Header = webhook.SignGitHub(secret, id, "push", body)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				break
			}
			time.Sleep(5 * time.Millisecond) // 503 until Run has started
		}
	}
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 20 }, 10*time.Second, 5*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for id, e := range got {
		assert.Equal(t, "github", e.Source, "the source it had at the relay")
		assert.Equal(t, string(bodies[id]), string(e.Payload), "byte-exact")
		// The consumer can check the provider's own signature.
		h := http.Header{}
		for k, v := range e.Meta {
			if name, ok := cutPrefix(k, webhook.MetaHeader); ok {
				h.Set(name, v)
			}
		}
		_, err := webhook.GitHub(secret).Verify(h, e.Payload)
		assert.NoError(t, err, "re-verified at the consumer")
	}
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

// A long poll returns as soon as an event arrives; an empty answer
// carries the same cursor; a wait of hours is capped; limit is capped.
func TestLongPoll(t *testing.T) {
	feed := &relay.MemoryFeed{}
	h := relay.NewHandler(feed, []string{"t"}, relay.WithMaxWait(300*time.Millisecond), relay.WithMaxLimit(3))
	ctx := context.Background()

	start := time.Now()
	rec := get(t, h, "?after=0&wait=10h", "t")
	took := time.Since(start)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.JSONEq(t, `{"cursor":"0","items":[]}`, rec.Body.String())
	assert.GreaterOrEqual(t, took, 300*time.Millisecond)
	assert.Less(t, took, 2*time.Second, "a wait of hours is cut to the cap")

	// Woken by the event, not by the cap: a handler whose cap (20 s) the
	// test could not mistake for a wake-up on a loaded machine.
	long := relay.NewHandler(feed, []string{"t"}, relay.WithMaxWait(20*time.Second), relay.WithMaxLimit(3))
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = feed.Append(ctx, event.Event{ID: "e1", Source: "s", Payload: []byte(`{}`)})
	}()
	start = time.Now()
	rec = get(t, long, "?after=0&wait=20s", "t")
	assert.Less(t, time.Since(start), 10*time.Second, "returns as soon as the event arrives, not at the cap")
	assert.Contains(t, rec.Body.String(), `"cursor":"1"`)

	for i := range 10 {
		_ = feed.Append(ctx, event.Event{ID: fmt.Sprint("x", i), Source: "s"})
	}
	rec = get(t, h, "?after=1&limit=1000", "t")
	assert.Contains(t, rec.Body.String(), `"cursor":"4"`, "limit capped at 3")
}

// Tokens: none or a wrong one is 401; any of several is accepted.
func TestAuth(t *testing.T) {
	h := relay.NewHandler(&relay.MemoryFeed{}, []string{"new", "old"})
	assert.Equal(t, http.StatusUnauthorized, get(t, h, "", "").Code)
	assert.Equal(t, http.StatusUnauthorized, get(t, h, "", "wrong").Code)
	assert.Equal(t, http.StatusUnauthorized, get(t, h, "", "ne").Code)
	assert.Equal(t, http.StatusOK, get(t, h, "", "new").Code)
	assert.Equal(t, http.StatusOK, get(t, h, "", "old").Code, "rotation: both accepted")
	assert.Panics(t, func() { relay.NewHandler(&relay.MemoryFeed{}, nil) }, "an open feed is refused")
	assert.Panics(t, func() { relay.NewHandler(&relay.MemoryFeed{}, []string{""}) })
}

// A cursor older than the retention is 410, and the fetcher says
// ErrCursorExpired; a consumer without a cursor starts at the oldest kept.
func TestGone(t *testing.T) {
	feed := &relay.MemoryFeed{}
	ctx := context.Background()
	for i := range 5 {
		require.NoError(t, feed.Append(ctx, event.Event{ID: fmt.Sprint(i), Source: "s"}))
	}
	time.Sleep(time.Millisecond)
	require.NoError(t, feed.Trim(ctx, time.Now()))
	require.NoError(t, feed.Append(ctx, event.Event{ID: "5", Source: "s"}))
	h := relay.NewHandler(feed, []string{"t"})
	assert.Equal(t, http.StatusGone, get(t, h, "?after=2", "t").Code)
	assert.Contains(t, get(t, h, "", "t").Body.String(), `"cursor":"6"`)
	srv := httptest.NewServer(h)
	defer srv.Close()
	_, err := relay.NewFetcher(srv.URL, "t", relay.WithWait(0)).Fetch(ctx, "2")
	assert.ErrorIs(t, err, poller.ErrCursorExpired)
}

// 1,000 idle long polls cost what their connections cost, and no more.
func TestIdleLongPollsMemory(t *testing.T) {
	h := relay.NewHandler(&relay.MemoryFeed{}, []string{"t"}, relay.WithMaxWait(10*time.Second))
	srv := httptest.NewServer(h)
	defer srv.Close()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	tr := &http.Transport{MaxConnsPerHost: 2000, MaxIdleConnsPerHost: 2000}
	client := &http.Client{Transport: tr}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"?wait=10s", nil)
			req.Header.Set("Authorization", "Bearer t")
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	time.Sleep(time.Second)
	runtime.ReadMemStats(&after)
	cancel()
	wg.Wait()
	tr.CloseIdleConnections()
	grown := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
	t.Logf("1,000 idle long polls (clients and server in this process): heap grew %.1f MiB", grown)
	assert.Less(t, grown, 64.0)
}
