// Package event defines the one event type that every intake source
// produces, and the two small interfaces that connect sources to the
// stream that dedupes, queues and delivers them.
//
// A [Source] (a webhook handler, a poller, or your own) turns outside input
// into an [Event] and hands it to a [Sink] with Put. The sink answers nil
// when the event is safely stored, or one of the errors below, which a
// source matches with [errors.Is]:
//
//   - [ErrDuplicate]: the event was already delivered and committed.
//   - [ErrPending]: the event is held by another claim that has not finished.
//   - [ErrQueueFull]: there is no room now; [RetryDelay] suggests when to
//     come back.
//   - [ErrNotRunning] and [ErrClosed]: the sink is not accepting events.
package event

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Via says which path an event arrived by.
type Via uint8

const (
	// Webhook means the provider pushed the event with an HTTP request.
	Webhook Via = iota + 1
	// Poll means a poller fetched the event from the provider's API.
	Poll
)

// String returns "webhook", "poll", or "unknown".
func (v Via) String() string {
	switch v {
	case Webhook:
		return "webhook"
	case Poll:
		return "poll"
	}
	return "unknown"
}

// Event is one change in an outside system, as received by a source.
//
// The same provider event must get the same ID whichever path it arrived
// by (a Stripe "evt_…" from the webhook body and from the Events API), so
// that the stream delivers it once. A source whose provider has no id
// derives one from the content with [ContentID], never from the arrival
// time.
type Event struct {
	ID       string            // provider's id for this event; with Source, the idempotency key
	Source   string            // name of the source; give a provider's webhook and poller the same one to dedupe across paths
	Type     string            // provider's event type, when known
	Via      Via               // Webhook or Poll
	Time     time.Time         // when it happened, per the provider; zero if unknown
	Received time.Time         // when this process got it
	Payload  []byte            // raw bytes exactly as received; do not modify
	Meta     map[string]string // source-specific extras; may be nil
}

// MetaDedupe is the Meta key whose value, when set, stands for the ID in
// the event's idempotency key ([Event.Key]). The webhook handler's replay
// guard sets it to "body:" and the hex of the body's SHA-256 (its first 16
// bytes) for providers whose signature covers the body but not the id, so
// that a replay under a new id is the same key; the ID stays the
// provider's.
const MetaDedupe = "dedupe-id"

// MetaTenant is the Meta key of the tenant an event came for (a
// customer's account, with secrets of its own: see webhook.PerTenant).
// When set, it is part of the event's key: the same provider id from two
// tenants is two events.
const MetaTenant = "tenant"

// MetaOrder is the Meta key of the object an event is about, its order
// key: within a subscription that keeps order, events with the same order
// key are handled one at a time, in the order they were stored. The
// stream sets it from its order function (intake.WithOrderKey) when a
// source has not; a durable queue indexes it. Empty or absent: unordered.
const MetaOrder = "intake.order"

// Key returns the idempotency key of the event: its Source and ID (or
// Meta[MetaDedupe] when set), joined so that no two different pairs give
// the same key. The key is len(Source) ":" Source ":" ID, e.g.
// "6:stripe:evt_123"; with a tenant (Meta[MetaTenant]) it is [TenantKey].
func (e Event) Key() string {
	id := e.ID
	if d := e.Meta[MetaDedupe]; d != "" {
		id = d
	}
	if t := e.Meta[MetaTenant]; t != "" {
		return TenantKey(t, e.Source, id)
	}
	return Key(e.Source, id)
}

// TenantKey returns the idempotency key of a tenant's event: "@",
// len(tenant), ":", tenant, ":" and [Key] of source and id, e.g.
// "@4:acme:6:stripe:evt_123". No key without a tenant begins with "@".
func TenantKey(tenant, source, id string) string {
	return "@" + strconv.Itoa(len(tenant)) + ":" + tenant + ":" + Key(source, id)
}

// Key returns the idempotency key for an event with the given source and
// id; see [Event.Key].
func Key(source, id string) string {
	b := make([]byte, 0, len(source)+len(id)+6)
	b = strconv.AppendInt(b, int64(len(source)), 10)
	b = append(b, ':')
	b = append(b, source...)
	b = append(b, ':')
	b = append(b, id...)
	return string(b)
}

// Sink accepts events from sources. The stream is the usual Sink.
//
// Put returns nil only once the event is stored: queued for delivery, with
// its key claimed. Otherwise it returns an error that wraps one of the
// package's sentinels, or a store or context error. Put must be safe for
// concurrent use.
type Sink interface {
	Put(ctx context.Context, e Event) error
}

// BatchSink is a [Sink] that can store many events in one step. PutMany
// answers each event as Put would, in order; the events may be stored in
// any order. A poller uses it for a page when its sink is one.
type BatchSink interface {
	Sink
	PutMany(ctx context.Context, events []Event) []error
}

// SinkFunc adapts a function to a [Sink].
type SinkFunc func(ctx context.Context, e Event) error

// Put calls f(ctx, e).
func (f SinkFunc) Put(ctx context.Context, e Event) error { return f(ctx, e) }

// Source produces events into a sink until its context is done.
//
// Run blocks. It returns nil or ctx.Err() once ctx is done and every
// goroutine it started has stopped; any other error is reported by the
// stream, which runs the source again after a backoff.
type Source interface {
	Name() string
	Run(ctx context.Context, sink Sink) error
}

// Starter is a [Source] that says when it has started after Run was
// called: a webhook handler once it routes requests to the sink (until
// then it answers 503). Started returns a channel closed at that moment;
// it is never reopened. The stream's own Started waits for every source
// that is a Starter.
type Starter interface {
	Started() <-chan struct{}
}

// ContentID returns the id a source gives an event whose provider sends
// none: "sha256:" and 32 hex digits of the SHA-256 of everything that makes
// the event distinct as the provider gave it — its Type, Time, Payload and
// Meta — and nothing about its arrival (not Source, which the key holds
// already, not Via, not Received). Two events that differ in any of those
// get different ids; the same content gets the same id on every retry and
// on both paths. The webhook handler and the poller call it, after the
// verifier or the fetch and before they add anything of their own.
func ContentID(e Event) string {
	e.ID, e.Source, e.Via, e.Received = "", "", 0, time.Time{}
	if len(e.Payload) == 0 {
		e.Payload = nil // no payload, nil or empty
	}
	if len(e.Meta) == 0 {
		e.Meta = nil
	}
	enc, _ := e.MarshalBinary()
	sum := sha256.Sum256(enc)
	return "sha256:" + hex.EncodeToString(sum[:16])
}

// Status is what a source says about its health: when it last did its job
// (a webhook accepted a request, a poller finished a poll) and when it
// last failed, with the error's text. Zero times mean never.
type Status struct {
	LastSuccess time.Time        `json:"last_success,omitzero"`
	LastError   time.Time        `json:"last_error,omitzero"`
	Err         string           `json:"error,omitempty"`
	Rejected    map[string]int64 `json:"rejected,omitempty"` // requests the source turned away, by reason
}

// Reporter is a source that reports its [Status]; the stream's health
// check lists it. [webhook.Handler] and [poller.Poller] are Reporters.
//
// [webhook.Handler]: https://pkg.go.dev/github.com/intakehq/intake/webhook#Handler
// [poller.Poller]: https://pkg.go.dev/github.com/intakehq/intake/poller#Poller
type Reporter interface {
	Status() Status
}

// StatusRecorder keeps a [Status] for a source. The zero value is ready
// to use; it is safe for concurrent use.
type StatusRecorder struct {
	success, failure atomic.Int64 // unix nanoseconds
	err              atomic.Pointer[string]
	rejected         sync.Map // reason → *atomic.Int64
}

// Rejected counts a request turned away for reason.
func (r *StatusRecorder) Rejected(reason string) {
	v, ok := r.rejected.Load(reason)
	if !ok {
		v, _ = r.rejected.LoadOrStore(reason, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
}

// Succeeded records a success now.
func (r *StatusRecorder) Succeeded() { r.success.Store(time.Now().UnixNano()) }

// Failed records err now.
func (r *StatusRecorder) Failed(err error) {
	msg := err.Error()
	r.err.Store(&msg)
	r.failure.Store(time.Now().UnixNano())
}

// Status returns what was recorded.
func (r *StatusRecorder) Status() Status {
	var st Status
	if n := r.success.Load(); n != 0 {
		st.LastSuccess = time.Unix(0, n)
	}
	if n := r.failure.Load(); n != 0 {
		st.LastError = time.Unix(0, n)
	}
	if p := r.err.Load(); p != nil {
		st.Err = *p
	}
	r.rejected.Range(func(k, v any) bool {
		if st.Rejected == nil {
			st.Rejected = map[string]int64{}
		}
		st.Rejected[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return st
}
