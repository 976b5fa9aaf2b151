package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/relay"
)

// Issue #27: `intake listen --forward-to` sends the context the event was
// created in onward, so that the local endpoint's span links to the
// webhook request's; an event without one is forwarded without.
func TestForwardSendsTheTraceContext(t *testing.T) {
	got := make(chan http.Header, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone() }))
	defer srv.Close()
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, meta := range []map[string]string{{"traceparent": tp, "tracestate": "k=v"}, nil} {
		e := event.Event{ID: "1", Source: "s", Payload: []byte(`{}`), Meta: meta}
		if err := forwardEvent(context.Background(), srv.Client(), srv.URL, e, nil); err != nil {
			t.Fatal(err)
		}
		h := <-got
		if h.Get("traceparent") != meta["traceparent"] || h.Get("tracestate") != meta["tracestate"] {
			t.Errorf("Meta %v forwarded as traceparent %q, tracestate %q", meta, h.Get("traceparent"), h.Get("tracestate"))
		}
	}
}

// Issue #34, item 11: listen routes each source to its own endpoint
// (--forward-to source=URL), and a forward answered with a 4xx other
// than 408 or 429 is a failure that ends, after --attempts tries, in a
// dead letter with one clear line, instead of being retried forever.
func TestListenRoutesPerSourceAndBuriesA4xx(t *testing.T) {
	var feed relay.MemoryFeed
	for _, e := range []event.Event{
		{Source: "github", ID: "d-1", Type: "push", Payload: []byte(`{"n":1}`)},
		{Source: "stripe", ID: "evt_1", Type: "charge.succeeded", Payload: []byte(`{"n":2}`)},
	} {
		if err := feed.Append(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	relaySrv := httptest.NewServer(relay.NewHandler(&feed, []string{"tok"}))
	defer relaySrv.Close()
	type hit struct{ path, body string }
	hits := make(chan hit, 100)
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hits <- hit{r.URL.Path, string(b)}
		if r.URL.Path == "/stripe" {
			http.Error(w, "no such route", http.StatusBadRequest)
		}
	}))
	defer endpoint.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	var errMu sync.Mutex
	stderr := writerFunc(func(p []byte) (int, error) { errMu.Lock(); defer errMu.Unlock(); return errb.Write(p) })
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"listen", "--relay", relaySrv.URL + "/feed", "--token", "tok", "--wait", "1s",
			"--state", filepath.Join(t.TempDir(), "l.db"), "--attempts", "3",
			"--forward-to", "github=" + endpoint.URL + "/github", "--forward-to", "stripe=" + endpoint.URL + "/stripe"}, &out, stderr)
	}()
	got := map[string][]string{}
	deadline := time.After(60 * time.Second)
	for len(got["/github"]) < 1 || len(got["/stripe"]) < 3 {
		select {
		case h := <-hits:
			got[h.path] = append(got[h.path], h.body)
		case code := <-done:
			t.Fatalf("listen exited %d: %s", code, errb.String())
		case <-deadline:
			t.Fatalf("forwards within a minute: %v", got)
		}
	}
	// The dead letter's line, then no more tries.
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		errMu.Lock()
		log := errb.String()
		errMu.Unlock()
		if strings.Contains(log, "dead") && strings.Contains(log, "evt_1") {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no dead-letter line for evt_1:\n%s", log)
		}
	}
	select {
	case h := <-hits:
		t.Errorf("a forward after the dead letter: %v", h)
	case <-time.After(500 * time.Millisecond):
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("exit %d", code)
	}
	if len(got["/github"]) != 1 || got["/github"][0] != `{"n":1}` || len(got["/stripe"]) != 3 || got["/stripe"][0] != `{"n":2}` {
		t.Errorf("forwards %v: want github's event once at /github, stripe's three times at /stripe", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
