// Package tracing is the small hook through which intake reports spans —
// a webhook request, a poll, each delivery attempt, a fetch — and carries
// a span's context with an event through any queue, so that an
// OpenTelemetry adapter (the module tracing/oteltracing) can export them
// without the core importing OpenTelemetry.
//
// The context travels in the event's Meta, under [MetaTraceparent] and
// [MetaTracestate] (W3C Trace Context): every durable queue, adoption by
// another replica and the relay feed keep Meta byte-exact, and `intake
// listen --forward-to` sends it onward as headers. A delivery's span links
// to it (OpenTelemetry's messaging conventions: a process span links to
// the message's creation context rather than being its child).
//
// A nil Tracer, the default everywhere, costs nothing: the core checks it
// before it builds anything.
package tracing

import "context"

// Tracer starts spans. Implementations must be safe for concurrent use.
type Tracer interface {
	// Start starts a span named name of kind kind, a child of ctx's span
	// if ctx carries one, with a link to link if it is a valid context
	// (the zero Link is none), and returns ctx carrying the new span (or
	// ctx itself, when the span is a no-op).
	Start(ctx context.Context, name string, kind Kind, link Link) (context.Context, Span)
	// Context returns the W3C fields of ctx's span ("" when ctx carries
	// none, or it is not sampled and the tracer says so).
	Context(ctx context.Context) Link
}

// Span is a span Start began. Its methods are called from one goroutine.
type Span interface {
	// IsRecording reports whether the span records what it is given: the
	// core builds attributes only for a span that does.
	IsRecording() bool
	// SetAttributes adds attributes to the span. It must neither keep
	// nor change attrs: the core reuses the slice, and may hand the same
	// one to several spans at once.
	SetAttributes(attrs ...Attr)
	// Fail records err on the span and marks it failed.
	Fail(err error)
	// End ends the span.
	End()
}

// Kind is a span's kind, as OpenTelemetry names them.
type Kind uint8

// The kinds intake starts: a webhook request is a server span, a poll and
// a fetch client spans, a delivery attempt a consumer span.
const (
	KindInternal Kind = iota
	KindServer
	KindClient
	KindProducer
	KindConsumer
)

// Link is a span context in W3C Trace Context form: a traceparent header's
// value and a tracestate's. The zero Link is no context.
type Link struct {
	Traceparent string
	Tracestate  string
}

// The Meta keys under which an event carries its creation context.
const (
	MetaTraceparent = "traceparent"
	MetaTracestate  = "tracestate"
)

// FromMeta returns the creation context an event's Meta carries.
func FromMeta(meta map[string]string) Link {
	if meta == nil {
		return Link{}
	}
	return Link{Traceparent: meta[MetaTraceparent], Tracestate: meta[MetaTracestate]}
}

// ToMeta stores l in *meta (made if nil); a zero Link stores nothing.
func ToMeta(meta *map[string]string, l Link) {
	if l.Traceparent == "" {
		return
	}
	if *meta == nil {
		*meta = make(map[string]string, 2)
	}
	(*meta)[MetaTraceparent] = l.Traceparent
	if l.Tracestate != "" {
		(*meta)[MetaTracestate] = l.Tracestate
	}
}

// Attr is a span attribute: a string or an integer.
type Attr struct {
	Key   string
	Str   string
	Int   int64
	IsInt bool
}

// String is a string attribute.
func String(key, v string) Attr { return Attr{Key: key, Str: v} }

// Int is an integer attribute.
func Int(key string, v int) Attr { return Attr{Key: key, Int: int64(v), IsInt: true} }

// The attribute keys intake sets, after OpenTelemetry's messaging
// conventions where one fits.
const (
	AttrSystem       = "messaging.system"              // "intake"
	AttrSource       = "messaging.destination.name"    // the event's source
	AttrOperation    = "messaging.operation.type"      // "receive", "process"
	AttrID           = "messaging.message.id"          // the event's id
	AttrType         = "intake.event.type"             //
	AttrVia          = "intake.event.via"              // "webhook", "poll"
	AttrAttempt      = "intake.delivery.attempt"       // 1 for the first
	AttrSubscription = "messaging.consumer.group.name" // the subscription
	AttrOutcome      = "intake.outcome"                // "ack", "retry", "dead"; a webhook's answer
	AttrEvents       = "messaging.batch.message_count" // a poll's page
	AttrStatus       = "http.response.status_code"     //
)
