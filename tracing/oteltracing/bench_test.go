package oteltracing_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
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

// BenchmarkIngest measures webhook ingest into the in-memory stream, as
// a provider meets it: signed Stripe events of about 1 KiB posted over
// loopback HTTP by 16 senders, each verified, stored, answered, and
// delivered to a handler that does nothing. The endpoints — tracing off,
// OpenTelemetry's no-op provider, the SDK sampling every span (and one
// trace in ten) into a batch processor whose exporter drops them, and
// the SDK's spans alone (every span sampled, linked, no attributes: what
// any adapter pays) — take turns, in a rotating order, in rounds of
// 2,000 requests within one run. A round ends with its provider's
// batcher flushed (timed) and a garbage collection (not timed), so that
// each mode pays for its own spans and garbage rather than leaving them
// to the next. The benchmark reports each one's throughput as a ratio of
// tracing off's:
//
//	go test ./tracing/oteltracing -run x -bench Ingest -benchtime 120x
func BenchmarkIngest(b *testing.B) {
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer sdk.Shutdown(context.Background())
	tenth := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}), sdktrace.WithSampler(sdktrace.TraceIDRatioBased(0.1)))
	defer tenth.Shutdown(context.Background())
	spans := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer spans.Shutdown(context.Background())
	modes := []struct {
		name   string
		tracer tracing.Tracer
		flush  func(context.Context) error
	}{
		{"off", nil, nil},
		{"noop", oteltracing.New(noop.NewTracerProvider()), nil},
		{"on", oteltracing.New(sdk), sdk.ForceFlush},
		{"on10%", oteltracing.New(tenth), tenth.ForceFlush},
		{"spans", unattributed{oteltracing.New(spans)}, spans.ForceFlush},
	}
	urls := make([]string, len(modes))
	for i, m := range modes {
		urls[i] = endpoint(b, m.tracer)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	pad := strings.Repeat("x", 900)
	var n atomic.Int64
	spent := make([]time.Duration, len(modes))
	const round, senders = 2000, 16
	b.ResetTimer()
	for r := range b.N {
		for k := range modes {
			i := (r + k) % len(modes) // each mode in each place of the round in turn
			start := time.Now()
			var wg sync.WaitGroup
			var left atomic.Int64
			left.Store(round)
			for range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for left.Add(-1) >= 0 {
						id := fmt.Sprintf("evt_%d", n.Add(1))
						body := []byte(`{"id":"` + id + `","object":"event","type":"invoice.paid","data":{"object":{"description":"` + pad + `"}}}`)
						for {
							req, _ := http.NewRequest(http.MethodPost, urls[i], bytes.NewReader(body))
							req.Header = webhook.SignStripe(secret, time.Now(), body)
							resp, err := client.Do(req)
							if err != nil {
								b.Error(err)
								return
							}
							_, _ = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
							if resp.StatusCode == http.StatusAccepted {
								break
							}
							time.Sleep(time.Millisecond) // full, or not running yet
						}
					}
				}()
			}
			wg.Wait()
			if modes[i].flush != nil {
				if err := modes[i].flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			spent[i] += time.Since(start)
			runtime.GC() // untimed: the next round starts owing nothing
		}
	}
	b.StopTimer()
	for i, m := range modes {
		b.ReportMetric(float64(spent[0])/float64(spent[i]), m.name+"/off")
		b.ReportMetric(float64(b.N*round)/spent[i].Seconds(), m.name+"-req/s")
	}
}

// endpoint runs a stream with a webhook endpoint, traced by tr (nil: not
// traced), until the benchmark ends, and returns its URL.
func endpoint(b *testing.B, tr tracing.Tracer) string {
	opts := []intake.Option{intake.WithLogger(quiet), intake.WithQueueSize(10000)}
	hopts := []webhook.Option{webhook.WithLogger(quiet)}
	if tr != nil {
		opts = append(opts, intake.WithTracer(tr))
		hopts = append(hopts, webhook.WithTracer(tr))
	}
	s := intake.New(opts...)
	hook := webhook.New("stripe", webhook.Stripe(secret), hopts...)
	s.Add(hook)
	s.Handle(func(context.Context, event.Event) error { return nil }, intake.WithWorkers(4))
	run(b, s)
	srv := httptest.NewServer(hook)
	b.Cleanup(srv.Close)
	return srv.URL
}

// unattributed is a tracer whose spans take no attributes: the SDK's
// spans, links and the carried context alone.
type unattributed struct{ tracing.Tracer }

func (u unattributed) Start(ctx context.Context, name string, kind tracing.Kind, link tracing.Link) (context.Context, tracing.Span) {
	ctx, s := u.Tracer.Start(ctx, name, kind, link)
	return ctx, unattributedSpan{s}
}

type unattributedSpan struct{ tracing.Span }

func (unattributedSpan) IsRecording() bool { return false }
