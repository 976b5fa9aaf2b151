package oteltracing_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/tracing"
	"github.com/intakehq/intake/tracing/oteltracing"
	"github.com/intakehq/intake/webhook"
)

// discard is an exporter that drops what the batcher hands it.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// BenchmarkIngest measures webhook ingest into the in-memory stream —
// a signed Stripe event of about 1 KiB verified, stored, answered, and
// delivered to a handler that does nothing — with tracing off, with
// OpenTelemetry's no-op provider, and with the SDK sampling every span
// into a batch processor (the exporter drops them), in one run:
//
//	go test ./tracing/oteltracing -run x -bench Ingest -count 6
func BenchmarkIngest(b *testing.B) {
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer sdk.Shutdown(context.Background())
	for _, tc := range []struct {
		name   string
		tracer tracing.Tracer
	}{
		{"tracing=off", nil},
		{"tracing=noop", oteltracing.New(noop.NewTracerProvider())},
		{"tracing=on", oteltracing.New(sdk)},
	} {
		b.Run(tc.name, func(b *testing.B) { ingest(b, tc.tracer) })
	}
}

func ingest(b *testing.B, tr tracing.Tracer) {
	opts := []intake.Option{intake.WithLogger(quiet), intake.WithQueueSize(10000)}
	hopts := []webhook.Option{webhook.WithLogger(quiet)}
	if tr != nil {
		opts = append(opts, intake.WithTracer(tr))
		hopts = append(hopts, webhook.WithTracer(tr))
	}
	s := intake.New(opts...)
	hook := webhook.New("stripe", webhook.Stripe(secret), hopts...)
	s.Add(hook)
	var handled atomic.Int64
	s.Handle(func(context.Context, event.Event) error { handled.Add(1); return nil }, intake.WithWorkers(4))
	stop := run(b, s)
	defer stop()
	pad := strings.Repeat("x", 900)
	var n atomic.Int64
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprintf("evt_%d", n.Add(1))
			body := []byte(`{"id":"` + id + `","object":"event","type":"invoice.paid","data":{"object":{"description":"` + pad + `"}}}`)
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
			req.Header = webhook.SignStripe(secret, now, body)
			w := httptest.NewRecorder()
			for {
				hook.ServeHTTP(w, req)
				if w.Code != http.StatusServiceUnavailable {
					break
				}
				time.Sleep(time.Millisecond) // full, or not running yet
				w = httptest.NewRecorder()
				req = httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
				req.Header = webhook.SignStripe(secret, now, body)
			}
			if w.Code != http.StatusAccepted {
				b.Fatalf("answered %d", w.Code)
			}
		}
	})
	b.StopTimer()
	for handled.Load() < n.Load() {
		time.Sleep(time.Millisecond)
	}
}
