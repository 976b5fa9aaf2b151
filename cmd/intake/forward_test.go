package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/intakehq/intake/event"
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
