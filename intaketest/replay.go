package intaketest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

// ReplayGuardSurvivesRestart checks that a webhook handler's replay guard
// lasts as long as the durable queue does: a GitHub delivery is taken by
// a stream on the queue open returns, the stream stops (as a process does
// on SIGINT), and a new stream on a new queue value over the same database
// answers the same body and signature under a new delivery id 200, and
// does not handle it. open is called twice; each value is closed (when it
// has a Close method) before the test ends.
func ReplayGuardSurvivesRestart(t *testing.T, open func() dedupe.Queue) {
	t.Helper()
	const secret = "guard secret"
	body := []byte(`{"action":"opened","issue":{"number":1}}`)
	post := func(h http.Handler, delivery, typ string) int {
		r := httptest.NewRequest(http.MethodPost, "/hooks/github", bytes.NewReader(body))
		for k, v := range webhook.SignGitHub(secret, delivery, typ, body) {
			r.Header[k] = v
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Code
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// run starts a process: a queue, a stream, a handler; it returns the
	// handler, the count of handled events and a stop function.
	run := func() (*webhook.Handler, *atomic.Int64, func()) {
		q := open()
		s := intake.New(intake.WithQueue(q), intake.WithLogger(quiet))
		h := webhook.New("github", webhook.GitHub(secret), webhook.WithLogger(quiet))
		s.Add(h)
		var handled atomic.Int64
		s.Handle(func(context.Context, event.Event) error { handled.Add(1); return nil })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for !s.Health().Running && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		stop := func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			if c, ok := q.(io.Closer); ok {
				_ = c.Close()
			}
		}
		return h, &handled, stop
	}

	h, handled, stop := run()
	code := post(h, "h-1", "issues")
	for code == http.StatusServiceUnavailable { // the handler not running yet
		time.Sleep(5 * time.Millisecond)
		code = post(h, "h-1", "issues")
	}
	if code != http.StatusAccepted {
		stop()
		t.Fatalf("first delivery: %d, want 202", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for handled.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if handled.Load() != 1 {
		t.Fatalf("first process handled %d events, want 1", handled.Load())
	}

	h, handled, stop = run()
	defer stop()
	for _, replay := range []struct{ id, typ string }{{"h-1-replay", "issues"}, {"h-1-push", "push"}} {
		code = post(h, replay.id, replay.typ)
		for code == http.StatusServiceUnavailable {
			time.Sleep(5 * time.Millisecond)
			code = post(h, replay.id, replay.typ)
		}
		if code != http.StatusOK {
			t.Errorf("replay as %s (%s) after a restart: %d, want 200 (a duplicate)", replay.id, replay.typ, code)
		}
	}
	if code = post(h, "h-1", "issues"); code != http.StatusOK {
		t.Errorf("the provider's redelivery of h-1: %d, want 200 (done)", code)
	}
	time.Sleep(200 * time.Millisecond) // a handler that would run, runs by now
	if n := handled.Load(); n != 0 {
		t.Errorf("after the restart %d events were handled, want 0", n)
	}
}
