package webhook_test

// Regression tests for the replay guard (issue #21, items 1 and 2).

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

// guarded is a scheme whose replay guard is on by default, with a request
// signed for (body, id, type) and the unsigned headers that carry the id
// and the type.
type guarded struct {
	name     string
	verifier *webhook.Scheme
	request  func(id, typ string, body []byte) *http.Request
}

func guardedSchemes() []guarded {
	post := func(b []byte, h http.Header) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(b))
		for k, v := range h {
			r.Header[k] = v
		}
		return r
	}
	return []guarded{
		{"github", webhook.GitHub(plainSec), func(id, typ string, b []byte) *http.Request {
			return post(b, webhook.SignGitHub(plainSec, id, typ, b))
		}},
		{"shopify", webhook.Shopify(plainSec), func(id, typ string, b []byte) *http.Request {
			return post(b, webhook.SignShopify(plainSec, id, typ, b))
		}},
		{"bitbucket", webhook.Bitbucket(plainSec), func(id, typ string, b []byte) *http.Request {
			return post(b, http.Header{
				"X-Hub-Signature": {webhook.SignHubSignature(nil, "sha256=", plainSec, b)},
				"X-Request-Uuid":  {id},
				"X-Event-Key":     {typ},
			})
		}},
		{"linear", webhook.Linear(plainSec), func(id, typ string, b []byte) *http.Request {
			return post(b, http.Header{
				"Linear-Signature": {webhook.SignLinear(plainSec, b)},
				"Linear-Delivery":  {id},
				"Linear-Event":     {typ},
			})
		}},
		{"gitlab", webhook.GitLab(plainSec), func(id, typ string, b []byte) *http.Request {
			return post(b, http.Header{
				"X-Gitlab-Token":  {plainSec},
				"Idempotency-Key": {id},
				"X-Gitlab-Event":  {typ},
			})
		}},
	}
}

// guardBody is a body each scheme accepts; Linear's carries a fresh
// webhookTimestamp.
func guardBody(n int) []byte {
	return []byte(`{"object":"page","entry":[{"id":"` + strconv.Itoa(n) + `"}],"webhookTimestamp":` +
		strconv.FormatInt(time.Now().UnixMilli(), 10) + `}`)
}

// Item 1: nothing the signature does not cover lets a replay through. A
// captured body and signature re-sent with a new id and a new type (both
// unsigned headers) is a duplicate, not a new event.
func TestReplayGuardIgnoresUnsignedHeaders(t *testing.T) {
	for _, sc := range guardedSchemes() {
		t.Run(sc.name, func(t *testing.T) {
			sink := &recordingSink{}
			h := webhook.New(sc.name, sc.verifier, webhook.WithLogger(quiet))
			running(t, h, sink, func() *http.Request {
				return sc.request("probe", "probe", []byte(`{"probe":1,"webhookTimestamp":`+strconv.FormatInt(time.Now().UnixMilli(), 10)+`}`))
			})
			b := guardBody(1)
			require.Equal(t, http.StatusAccepted, serve(h, sc.request("d-1", "issues", b)).Code)
			for _, replay := range []struct{ id, typ string }{
				{"d-2", "issues"}, // a new id
				{"d-3", "push"},   // a new id and a new type
				{"d-4", ""},       // a new id and no type
			} {
				rec := serve(h, sc.request(replay.id, replay.typ, b))
				assert.Equal(t, http.StatusOK, rec.Code, "replay as %s/%q: a duplicate", replay.id, replay.typ)
			}
			sink.mu.Lock()
			defer sink.mu.Unlock()
			assert.Len(t, sink.events, 1, "the replays are not handled")
		})
	}
}

// storeSink is a sink that offers a durable store to the replay guard, as
// a stream with a durable backend does. It ignores events with the id
// "probe".
type storeSink struct {
	recordingSink
	store dedupe.Store
}

func (s *storeSink) Put(ctx context.Context, e event.Event) error {
	if e.ID == "probe" {
		return nil
	}
	return s.recordingSink.Put(ctx, e)
}

// runWith runs h with sink (itself, not wrapped) until the test ends.
func runWith(t *testing.T, h *webhook.Handler, sink event.Sink) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	require.Eventually(t, func() bool {
		return serve(h, githubRequest(plainSec, "probe", []byte("probe"))).Code/100 == 2
	}, time.Second, time.Millisecond)
}

func (s *storeSink) ReplayStore() (dedupe.Store, time.Duration) { return s.store, time.Hour }

// Item 2: with a sink that keeps the guard's keys (a stream on a durable
// backend), a restarted handler, a new value as after a process restart,
// still refuses the replay of a body it took before.
func TestReplayGuardUsesTheSinksStore(t *testing.T) {
	shared := dedupe.NewMemory() // stands for the database both processes share
	b := deliveryBody("h-1")

	t.Run("first process", func(t *testing.T) {
		first := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(quiet))
		runWith(t, first, &storeSink{store: shared})
		require.Equal(t, http.StatusAccepted, serve(first, githubRequest(plainSec, "h-1", b)).Code)
	})

	second := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(quiet))
	sink2 := &storeSink{store: shared}
	runWith(t, second, sink2)
	assert.Equal(t, http.StatusOK, serve(second, githubRequest(plainSec, "h-1-replay", b)).Code, "the replay after a restart is a duplicate")
	sink2.mu.Lock()
	defer sink2.mu.Unlock()
	assert.Empty(t, sink2.events)
}

// A guard given with WithReplayGuard wins over the sink's store; nil
// turns it off even on a durable sink.
func TestReplayGuardOptionWinsOverTheSink(t *testing.T) {
	b := deliveryBody("x-1")
	h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(quiet), webhook.WithReplayGuard(nil))
	runWith(t, h, &storeSink{store: dedupe.NewMemory()})
	require.Equal(t, http.StatusAccepted, serve(h, githubRequest(plainSec, "x-1", b)).Code)
	assert.Equal(t, http.StatusAccepted, serve(h, githubRequest(plainSec, "x-2", b)).Code, "the guard is off")
}

// Issue #21, item 15: a JSON GitHub body sent with curl's default
// Content-Type (application/x-www-form-urlencoded) is JSON: decided by
// the body, not the header.
func TestGitHubJSONWithCurlsContentType(t *testing.T) {
	sink := &recordingSink{}
	h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(quiet))
	running(t, h, sink, githubProbe)
	b := []byte(" {\"zen\":\"Design for failure.\",\"hook_id\":2}")
	r := githubRequest(plainSec, "curl-1", b)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	require.Equal(t, http.StatusAccepted, serve(h, r).Code)
	sink.mu.Lock()
	defer sink.mu.Unlock()
	require.Len(t, sink.events, 1)
	assert.Equal(t, string(b), string(sink.events[0].Payload))
}
