package oteltracing_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/tracing/oteltracing"
	"github.com/intakehq/intake/webhook"
)

// A webhook request and the handler call of its event are two spans: the
// second links to the first, whichever replica or queue it went through.
func ExampleNew() {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tr := oteltracing.New(tp)

	s := intake.New(intake.WithLogger(quiet), intake.WithTracer(tr))
	hook := webhook.New("stripe", webhook.Stripe("whsec_example"), webhook.WithLogger(quiet), webhook.WithTracer(tr))
	s.Add(hook)
	handled := make(chan struct{})
	s.Handle(func(ctx context.Context, e event.Event) error { close(handled); return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	srv := httptest.NewServer(hook)
	body := []byte(`{"id":"evt_1","object":"event","type":"invoice.paid"}`)
	for {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		req.Header = webhook.SignStripe("whsec_example", time.Now(), body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			break
		}
		time.Sleep(10 * time.Millisecond) // 503 until Run has started
	}
	<-handled
	cancel()
	<-done
	srv.Close() // waits for the request's span to end

	spans := exp.GetSpans()
	sort.Slice(spans, func(i, j int) bool { return spans[i].Name < spans[j].Name })
	for _, sp := range spans {
		fmt.Println(sp.Name, sp.SpanKind)
	}
	fmt.Println("linked:", spans[0].Links[0].SpanContext.SpanID() == spans[1].SpanContext.SpanID())
	// Output:
	// process stripe consumer
	// webhook stripe server
	// linked: true
}
