// Package oteltracing implements intake's tracing hook
// ([github.com/intakehq/intake/tracing.Tracer]) with OpenTelemetry: give
// [New]'s tracer to the webhook handler, the poller, the stream and the
// fetcher (each has a WithTracer option), and a webhook request, a poll,
// every delivery attempt and every fetch become spans of your
// TracerProvider. A delivery's span links to the span its event was
// created in (the request or the poll), whichever replica, relay or
// queue it went through.
package oteltracing

import (
	"context"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/intakehq/intake/tracing"
)

// Name is the instrumentation scope of intake's spans.
const Name = "github.com/intakehq/intake"

// Tracer is a [tracing.Tracer] over an OpenTelemetry tracer. It is safe
// for concurrent use.
type Tracer struct {
	t    trace.Tracer
	noop bool // OpenTelemetry's no-op provider: nothing to start
}

// New returns a Tracer whose spans tp starts, under the scope [Name].
func New(tp trace.TracerProvider) *Tracer {
	_, isNoop := tp.(noop.TracerProvider)
	return &Tracer{t: tp.Tracer(Name), noop: isNoop}
}

var _ tracing.Tracer = (*Tracer)(nil)

// Start implements [tracing.Tracer]. A link that does not parse as W3C
// Trace Context is left out. A span the provider does not record and
// that has no context of its own (OpenTelemetry's no-op provider) costs
// no context and no allocation.
func (t *Tracer) Start(ctx context.Context, name string, kind tracing.Kind, link tracing.Link) (context.Context, tracing.Span) {
	if t.noop {
		return ctx, nopSpan{}
	}
	var sctx context.Context
	var s trace.Span
	if sc := Parse(link); sc.IsValid() {
		sctx, s = t.t.Start(ctx, name, kindOption[kind], trace.WithLinks(trace.Link{SpanContext: sc}))
	} else {
		sctx, s = t.t.Start(ctx, name, kindOption[kind])
	}
	if !s.IsRecording() && !s.SpanContext().IsValid() {
		return ctx, nopSpan{}
	}
	return sctx, span{s}
}

// kindOption is the start option of each kind, made once.
var kindOption = [...]trace.SpanStartOption{
	tracing.KindInternal: trace.WithSpanKind(trace.SpanKindInternal),
	tracing.KindServer:   trace.WithSpanKind(trace.SpanKindServer),
	tracing.KindClient:   trace.WithSpanKind(trace.SpanKindClient),
	tracing.KindProducer: trace.WithSpanKind(trace.SpanKindProducer),
	tracing.KindConsumer: trace.WithSpanKind(trace.SpanKindConsumer),
}

// Context implements [tracing.Tracer].
func (t *Tracer) Context(ctx context.Context) tracing.Link {
	return Format(trace.SpanContextFromContext(ctx))
}

// Format writes a span context in W3C Trace Context form (version 00).
func Format(sc trace.SpanContext) tracing.Link {
	if !sc.IsValid() {
		return tracing.Link{}
	}
	tid, sid := sc.TraceID(), sc.SpanID()
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	hexTo(b[3:35], tid[:])
	b[35] = '-'
	hexTo(b[36:52], sid[:])
	b[52] = '-'
	hexTo(b[53:55], []byte{byte(sc.TraceFlags())})
	return tracing.Link{Traceparent: string(b[:]), Tracestate: sc.TraceState().String()}
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func hexTo(dst, src []byte) {
	const digits = "0123456789abcdef"
	for i, c := range src {
		dst[2*i], dst[2*i+1] = digits[c>>4], digits[c&15]
	}
}

// Parse reads a W3C Trace Context link as a remote span context. It
// follows the specification: a version of two lower-case hex digits, not
// ff; version 00 exactly 55 characters; a later version read as 00 for
// its first fields, which a dash must end if more follows. Anything else,
// or an all-zero trace or span id, is an invalid context.
func Parse(l tracing.Link) trace.SpanContext {
	tp := l.Traceparent
	if len(tp) < 55 || !lowerHex(tp[:2]) || tp[:2] == "ff" || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' ||
		(tp[:2] == "00" && len(tp) != 55) || (len(tp) > 55 && tp[55] != '-') {
		return trace.SpanContext{}
	}
	tid, err := trace.TraceIDFromHex(tp[3:35])
	if err != nil {
		return trace.SpanContext{}
	}
	sid, err := trace.SpanIDFromHex(tp[36:52])
	if err != nil {
		return trace.SpanContext{}
	}
	var flags byte
	for _, c := range []byte(tp[53:55]) {
		switch {
		case '0' <= c && c <= '9':
			flags = flags<<4 | (c - '0')
		case 'a' <= c && c <= 'f':
			flags = flags<<4 | (c - 'a' + 10)
		default:
			return trace.SpanContext{}
		}
	}
	cfg := trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags) & trace.FlagsSampled, Remote: true}
	if l.Tracestate != "" {
		if ts, err := trace.ParseTraceState(l.Tracestate); err == nil {
			cfg.TraceState = ts
		}
	}
	return trace.NewSpanContext(cfg)
}

// span adapts an OpenTelemetry span.
type span struct{ s trace.Span }

func (s span) IsRecording() bool { return s.s.IsRecording() }

// SetAttributes converts attrs in a pooled buffer: a span copies what
// it is given, so the buffer is free again when the call returns.
func (s span) SetAttributes(attrs ...tracing.Attr) {
	buf := kvPool.Get().(*[]attribute.KeyValue)
	kv := (*buf)[:0]
	for _, a := range attrs {
		if a.IsInt {
			kv = append(kv, attribute.Int64(a.Key, a.Int))
		} else {
			kv = append(kv, attribute.String(a.Key, a.Str))
		}
	}
	s.s.SetAttributes(kv...)
	clear(kv) // no strings kept alive by the pool
	*buf = kv[:0]
	kvPool.Put(buf)
}

var kvPool = sync.Pool{New: func() any { kv := make([]attribute.KeyValue, 0, 16); return &kv }}

func (s span) Fail(err error) {
	s.s.RecordError(err)
	s.s.SetStatus(codes.Error, err.Error())
}

func (s span) End() { s.s.End() }

// nopSpan is the span of a provider that records nothing.
type nopSpan struct{}

func (nopSpan) IsRecording() bool                   { return false }
func (nopSpan) SetAttributes(attrs ...tracing.Attr) {}
func (nopSpan) Fail(error)                          {}
func (nopSpan) End()                                {}
