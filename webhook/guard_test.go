package webhook_test

// Regression tests for the replay guard (issue #21, items 1 and 2).

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
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

// keyedSink stores each event once by its key, as the stream does, and
// records what it stored.
type keyedSink struct {
	mu     sync.Mutex
	keys   map[string]bool
	events []event.Event
}

func (s *keyedSink) Put(_ context.Context, e event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.ID == "probe" {
		return nil
	}
	if s.keys == nil {
		s.keys = map[string]bool{}
	}
	if s.keys[e.Key()] {
		return event.ErrDuplicate
	}
	s.keys[e.Key()] = true
	s.events = append(s.events, e)
	return nil
}

func (s *keyedSink) stored() []event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]event.Event(nil), s.events...)
}

// runWith runs h with sink until the test ends.
func runWith(t *testing.T, h *webhook.Handler, sink event.Sink, probe *http.Request) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, sink) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	body, _ := io.ReadAll(probe.Body)
	require.Eventually(t, func() bool {
		r := probe.Clone(context.Background())
		r.Body = io.NopCloser(bytes.NewReader(body))
		return serve(h, r).Code/100 == 2
	}, 30*time.Second, time.Millisecond)
}

// Item 1: nothing the signature does not cover lets a replay through. A
// captured body and signature re-sent with a new id and a new type (both
// unsigned headers) is the same key to the stream: a duplicate, not a new
// event; the event keeps the provider's id.
func TestReplayGuardIgnoresUnsignedHeaders(t *testing.T) {
	for _, sc := range guardedSchemes() {
		t.Run(sc.name, func(t *testing.T) {
			sink := &keyedSink{}
			h := webhook.New(sc.name, sc.verifier, webhook.WithLogger(quiet))
			runWith(t, h, sink, sc.request("probe", "probe", guardBody(0)))

			b := guardBody(1)
			require.Equal(t, http.StatusAccepted, serve(h, sc.request("d-1", "issues", b)).Code)
			for _, replay := range []struct{ id, typ string }{
				{"d-2", "issues"}, // a new id
				{"d-3", "push"},   // a new id and a new type
				{"d-4", ""},       // a new id and no type
				{"d-1", "issues"}, // the provider's own redelivery: a duplicate of a done event
			} {
				rec := serve(h, sc.request(replay.id, replay.typ, b))
				assert.Equal(t, http.StatusOK, rec.Code, "replay as %s/%q: a duplicate", replay.id, replay.typ)
			}
			got := sink.stored()
			require.Len(t, got, 1, "the replays are not handled")
			assert.Equal(t, "d-1", got[0].ID, "the event keeps the delivery id")
			assert.True(t, strings.HasPrefix(got[0].Meta[event.MetaDedupe], "body:"), "keyed by the body")
			assert.Equal(t, event.Key(sc.name, got[0].Meta[event.MetaDedupe]), got[0].Key())
		})
	}
}

// WithReplayGuard(nil) turns the guard off: events are keyed by their id,
// and a replay under a new id is a new event.
func TestReplayGuardOff(t *testing.T) {
	b := deliveryBody("x-1")
	sink := &keyedSink{}
	h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(quiet), webhook.WithReplayGuard(nil))
	runWith(t, h, sink, githubProbe())
	require.Equal(t, http.StatusAccepted, serve(h, githubRequest(plainSec, "x-1", b)).Code)
	assert.Equal(t, http.StatusAccepted, serve(h, githubRequest(plainSec, "x-2", b)).Code, "the guard is off")
	for _, e := range sink.stored() {
		assert.Empty(t, e.Meta[event.MetaDedupe])
	}
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

// Item 1, with a guard in a store of its own (WithReplayGuard): the key it
// claims is the body's alone, so a replay under a new id and a new type
// is a duplicate there too.
func TestReplayGuardStoreIgnoresUnsignedHeaders(t *testing.T) {
	sink := &recordingSink{}
	h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(quiet), webhook.WithReplayGuard(dedupe.NewMemory()))
	running(t, h, sink, githubProbe)
	b := deliveryBody("s-1")
	require.Equal(t, http.StatusAccepted, serve(h, githubRequest(plainSec, "s-1", b)).Code)
	r := githubRequest(plainSec, "s-2", b)
	r.Header.Set("X-GitHub-Event", "issues") // githubRequest signs as "push"
	assert.Equal(t, http.StatusOK, serve(h, r).Code, "a replay under a new id and type")
	sink.mu.Lock()
	defer sink.mu.Unlock()
	assert.Len(t, sink.events, 1)
}
