package oteltracing_test

import (
	"context"
	"testing"

	"github.com/intakehq/intake/tracing"
	"github.com/intakehq/intake/tracing/oteltracing"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// BenchmarkSpanPair is what tracing adds to one event with every span
// sampled, without the HTTP and the stream around it: the request's
// server span and its context stored in Meta, then the delivery's
// consumer span linked to it, attributes as the core sets them (the
// request's a list shared by every request of one outcome, the
// delivery's in its worker's buffer).
//
//	go test ./tracing/oteltracing -run x -bench SpanPair
func BenchmarkSpanPair(b *testing.B) {
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(discard{}), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer sdk.Shutdown(context.Background())
	tr := oteltracing.New(sdk)
	hook := []tracing.Attr{tracing.String(tracing.AttrSystem, "intake"), tracing.String(tracing.AttrSource, "stripe"),
		tracing.String(tracing.AttrOperation, "receive"), tracing.String(tracing.AttrOutcome, "accepted")}
	buf := make([]tracing.Attr, 0, 7)
	b.ReportAllocs()
	for range b.N {
		ctx, sp := tr.Start(context.Background(), "webhook stripe", tracing.KindServer, tracing.Link{})
		l := tr.Context(ctx)
		var meta map[string]string
		tracing.ToMeta(&meta, l)
		sp.SetAttributes(hook...)
		sp.End()
		_, sp2 := tr.Start(context.Background(), "process stripe", tracing.KindConsumer, tracing.FromMeta(meta))
		buf = append(buf[:0], tracing.String(tracing.AttrSource, "stripe"), tracing.String(tracing.AttrType, "invoice.paid"), tracing.String(tracing.AttrID, "evt_123"),
			tracing.String(tracing.AttrVia, "webhook"), tracing.Int(tracing.AttrAttempt, 1), tracing.String(tracing.AttrSubscription, "default"), tracing.String(tracing.AttrOutcome, "ack"))
		sp2.SetAttributes(buf...)
		sp2.End()
	}
}
