// Package webhook receives webhooks: it verifies each request's signature
// on the raw body, stores the event through a sink, and answers at once,
// without waiting for the event to be processed.
//
// A [Handler] is both an [http.Handler], to mount in any router, and an
// [event.Source], to add to an intake stream, which connects it to the
// stream's idempotency store and queue:
//
//	h := webhook.New("stripe", webhook.Stripe(os.Getenv("STRIPE_WHSEC")))
//	mux.Handle("POST /hooks/stripe", h)
//	stream.Add(h)
//
// What a request gets:
//
//   - 405 unless its method is POST, or GET for a scheme whose provider
//     checks the endpoint with a GET (Meta's hub.challenge).
//   - A handshake the provider sends before any event (Slack's, Discord's,
//     Zoom's, Twitch's challenges when their signature verifies; Meta's
//     GET with the verify token; Graph's validationToken) is answered as
//     the provider requires, and stores nothing.
//   - 413 if its body is over the limit (1 MiB by default); the body is read
//     through [http.MaxBytesReader] and never beyond the limit.
//   - 400 if the body cannot be read, or the verified request lacks what the
//     scheme needs (an id header, a JSON body with an id).
//   - 401 if a signature header is missing or malformed, no signature
//     matches any secret, or the signed timestamp is outside the tolerance.
//   - 202 once the event is stored (claimed and queued), 200 if it was
//     already delivered: never a 2xx unless the event is stored.
//   - 409 with Retry-After if the same event is being processed elsewhere.
//   - 503 with Retry-After if the queue is full, the store failed, or the
//     stream is not running, so that the provider retries later.
//
// Verification runs on the raw bytes before any parsing, compares in
// constant time, accepts several secrets at once (rotation), and fails
// closed: no secret, an empty secret, or an empty signature never verifies.
// Logs and errors name the reason and the source, never a secret or a
// signature.
//
// A [Scheme] says how a provider signs its requests. There is one
// constructor for each of twenty-three providers: [Bitbucket], [Box],
// [Discord], [Dropbox], [GitHub], [GitLab], [GoogleChannel], [Intercom],
// [Linear], [Mailgun], [Meta], [MicrosoftGraph], [Paddle], [PagerDuty],
// [SendGrid], [Shopify], [Slack], [Square], [StandardWebhooks] (Svix and
// the providers that send its headers), [Stripe], [Twilio], [Twitch] and
// [Zoom] ([Dropbox] and [GoogleChannel] notify only: they trigger a poller
// instead of storing an event). [HMAC] verifies any other provider that
// signs the body with HMAC-SHA256, and [PerTenant] looks up each tenant's
// secrets per request. The Sign… functions sign as the providers do, for
// tests and the CLI.
//
// Serve webhooks from an [http.Server] with ReadHeaderTimeout and
// ReadTimeout set, so that a slow client cannot hold a connection open.
package webhook

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/logsample"
	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/tracing"
)

// ErrAlreadyRunning is returned by [Handler.Run] when the handler is
// already running with another sink.
var ErrAlreadyRunning = errors.New("webhook: handler already running")

// DefaultMaxBody is the default limit on a request body.
const DefaultMaxBody = 1 << 20

// Handler receives one provider's webhooks. Create it with [New]; mount it
// as an [http.Handler] and run it as an [event.Source] (usually by adding
// it to a stream). Until Run gives it a sink, it answers 503. It is safe
// for concurrent use.
type Handler struct {
	name      string
	v         Verifier
	maxBody   int64
	hold      time.Duration
	log       *slog.Logger
	rec       metric.Recorder
	tracer    tracing.Tracer
	spanName  string   // "webhook " and the name, when traced
	spanAttr  sync.Map // a request span's outcome → its attributes, made once each
	accepted  func(event.Event)
	guard     dedupe.Store // a replay guard of its own store (WithReplayGuard); nil: none
	guardSet  bool         // WithReplayGuard was given
	bodyKey   bool         // the default guard: the event is keyed by its body (event.MetaDedupe)
	keep      []string     // request headers kept in Meta
	keepSet   bool
	recSet    bool // WithMetrics was given: the stream's recorder is not used
	tracerSet bool // WithTracer was given
	sink      atomic.Pointer[sinkRef]
	started   chan struct{} // closed when Run first attaches a sink
	once      sync.Once
	get       bool                     // the verifier answers GET handshakes
	allow     string                   // the Allow header of a 405
	ack       func(event.Event) *Reply // the scheme's own answer to a stored event
	logs      logsample.Sampler        // repeated records: at most once a second per reason
	status    event.StatusRecorder
	trigger   func() // WithTrigger
	notify    bool   // the scheme's notifications trigger and store nothing
}

// sinkRef is the sink of a running handler, with the recorder and tracer
// of the stream it runs in when the handler was given none of its own.
type sinkRef struct {
	event.Sink
	rec    metric.Recorder
	tracer tracing.Tracer
}

// observers returns the recorder and the tracer a request uses: the
// handler's own, or those of the stream it runs in.
func (h *Handler) observers() (metric.Recorder, tracing.Tracer) {
	rec, tr := h.rec, h.tracer
	if ref := h.sink.Load(); ref != nil {
		if ref.rec != nil {
			rec = ref.rec
		}
		if ref.tracer != nil {
			tr = ref.tracer
		}
	}
	return rec, tr
}

// Option configures a [Handler].
type Option func(*Handler)

// WithMaxBody sets the largest body accepted, in bytes; larger ones get
// 413. Defaults to [DefaultMaxBody] (1 MiB).
func WithMaxBody(n int64) Option { return func(h *Handler) { h.maxBody = n } }

// WithHoldOnFull sets the overflow policy for senders that do not retry:
// when the queue is full, hold the request for up to d waiting for room
// before answering 503. Defaults to 0: answer 503 at once.
func WithHoldOnFull(d time.Duration) Option { return func(h *Handler) { h.hold = d } }

// WithLogger sets the logger. Defaults to [slog.Default].
func WithLogger(l *slog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithMetrics sets the metrics recorder. Defaults to the recorder of the
// stream the handler is added to (intake.WithMetrics), and to
// [metric.Discard] before its Run or without one.
func WithMetrics(r metric.Recorder) Option {
	return func(h *Handler) { h.rec, h.recSet = r, true }
}

// WithTracer makes each request a server span ("webhook" and the source's
// name: verify, store, answer), whose context the stored event carries in
// its Meta (see package [tracing]): the creation context its deliveries
// link to. A request's own traceparent header, when the provider sends
// one, is a link of that span. Defaults to the tracer of the stream the
// handler is added to (intake.WithTracer); without one, no spans.
func WithTracer(t tracing.Tracer) Option {
	return func(h *Handler) { h.tracer, h.tracerSet = t, true }
}

// OnAccepted sets a function called with each newly stored event after the
// response status is decided, on the request's goroutine. The hybrid
// pattern uses it to trigger a poll for the full state. It must not block.
func OnAccepted(fn func(event.Event)) Option { return func(h *Handler) { h.accepted = fn } }

// WithReplayGuard sets a store of its own for the replay guard, or turns
// the guard off with nil.
//
// Schemes whose signature covers the body alone (GitHub, Shopify, Meta,
// Bitbucket, Linear; GitLab signs nothing) verify the same body and
// signature sent again under a new delivery id. Their guard is on by
// default and costs nothing: the handler keys the event by the body's
// SHA-256 instead of the unsigned id (it sets [event.MetaDedupe]), so the
// stream's own dedupe answers a replay under any new id, or type, as a
// duplicate (200): in the stream's store, for its retention, in its
// database when it has a durable backend (a restart does not forget it,
// replicas share it). The event's ID stays the delivery id; a provider's
// redelivery of the same body is the same key, so the stream decides as
// for any duplicate (done: 200; dead: delivered again). Such events are
// not deduped by id across paths: a poller of the same source gives its
// events keys of their own.
//
// With a store here the guard works apart from the stream, as it did
// before: it claims the body's SHA-256, and the body with the id, in store
// beside the event's own key, for 7 days (three more writes a request on a
// durable store). That is how to turn it on for HMAC, whose bodies may
// legitimately repeat, so it is off there by default. Schemes that sign
// the id or a timestamp (Standard Webhooks, Stripe, Slack) need no guard.
func WithReplayGuard(store dedupe.Store) Option {
	return func(h *Handler) { h.guard, h.guardSet = store, true }
}

// MetaHeader is the prefix of the Meta keys under which [WithKeepHeaders]
// keeps request headers: "header:" and the canonical name.
const MetaHeader = "header:"

// WithKeepHeaders keeps the named request headers in each event's Meta,
// under [MetaHeader] and the canonical name, so that a consumer further on
// (a relay's) can verify the provider's own signature again. With no
// names, a [*Scheme]'s own headers ([Scheme.Headers]: its signature, id,
// timestamp and type headers). Defaults to keeping none.
func WithKeepHeaders(names ...string) Option {
	return func(h *Handler) {
		h.keepSet = true
		for _, n := range names {
			h.keep = append(h.keep, http.CanonicalHeaderKey(n))
		}
	}
}

// replayWindow is how long the replay guard remembers a body.
const replayWindow = 7 * 24 * time.Hour

// New returns a handler for webhooks verified by v. name is the source
// name put on every event: give a provider's webhook handler and its
// poller the same name so that the stream dedupes across both paths.
//
// New panics if v is a [*Scheme] that can never verify a request (no
// secret, an empty one, one not in the provider's format, an incomplete
// HMAC configuration): a secret read from an unset environment variable
// fails at start, not as a 401 for every delivery.
func New(name string, v Verifier, opts ...Option) *Handler {
	if v == nil {
		panic("webhook: New(" + strconv.Quote(name) + ") with a nil Verifier")
	}
	if sc, ok := v.(*Scheme); ok && sc.bad != nil {
		panic("webhook: New(" + strconv.Quote(name) + "): " + sc.name + " scheme unusable: " + sc.bad.Error())
	}
	h := &Handler{name: name, v: v, maxBody: DefaultMaxBody, log: slog.Default(), rec: metric.Discard{}, started: make(chan struct{}),
		spanName: "webhook " + name}
	for _, o := range opts {
		o(h)
	}
	h.allow = http.MethodPost
	if m, ok := v.(interface{ Methods() []string }); ok {
		h.get = slices.Contains(m.Methods(), http.MethodGet)
		if h.get {
			h.allow = "GET, POST"
		}
	}
	if sc, ok := schemeOf(v); ok {
		h.ack = sc.ack
		h.notify = sc.notifyOnly
		if h.notify && h.trigger == nil {
			panic("webhook: New(" + strconv.Quote(name) + "): " + sc.name + " notifications only say that something changed: give WithTrigger the paired poller's Trigger")
		}
	}
	if h.trigger != nil && !h.notify {
		panic("webhook: New(" + strconv.Quote(name) + "): WithTrigger is for notification-only schemes (Dropbox, GoogleChannel); to poll after a stored event, use OnAccepted")
	}
	if sc, ok := schemeOf(v); ok && sc.guardDefault && !h.guardSet {
		h.bodyKey = true
	}
	if sc, ok := schemeOf(v); ok && h.keepSet && len(h.keep) == 0 {
		h.keep = sc.Headers()
	}
	return h
}

// schemeOf returns the built-in scheme a verifier is, or verifies with
// per tenant: what the handler reads of it (its replies, its replay
// guard's default, its headers).
func schemeOf(v Verifier) (*Scheme, bool) {
	switch v := v.(type) {
	case *Scheme:
		return v, true
	case *Tenants:
		return v.probe, true
	}
	return nil, false
}

// Name implements [event.Source].
func (h *Handler) Name() string { return h.name }

// Via returns [event.Webhook]: the path the handler's events come by, as
// the stream's health lists it.
func (h *Handler) Via() event.Via { return event.Webhook }

// Status implements [event.Reporter]: the last request whose event was
// stored (or was a duplicate), and the last that failed to be stored.
func (h *Handler) Status() event.Status { return h.status.Status() }

// Run implements [event.Source]: it routes verified events to sink until
// ctx is done, then returns nil. Requests that arrive outside Run get 503;
// [Handler.Started] says when Run has begun routing.
func (h *Handler) Run(ctx context.Context, sink event.Sink) error {
	ref := &sinkRef{Sink: sink}
	if m, ok := sink.(interface{ Metrics() metric.Recorder }); ok && !h.recSet {
		ref.rec = m.Metrics()
	}
	if t, ok := sink.(interface{ Tracer() tracing.Tracer }); ok && !h.tracerSet {
		ref.tracer = t.Tracer()
	}
	if !h.sink.CompareAndSwap(nil, ref) {
		return ErrAlreadyRunning
	}
	h.once.Do(func() { close(h.started) })
	<-ctx.Done()
	h.sink.CompareAndSwap(ref, nil)
	return nil
}

// Started implements [event.Starter]: the channel is closed once Run
// routes requests to its sink (before, they get 503). A stream's own
// [github.com/intakehq/intake.Stream.Started] waits for it.
func (h *Handler) Started() <-chan struct{} { return h.started }

// ServeHTTP implements [http.Handler].
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec, tr := h.observers()
	if tr != nil {
		h.serveTraced(w, r, start, rec, tr)
		return
	}
	reason := h.serve(w, r, start, tracing.Link{})
	rec.Count(metric.Received, h.name, reason, 1)
	rec.Observe(metric.AckLatency, h.name, time.Since(start))
}

// serveTraced is ServeHTTP inside a span.
func (h *Handler) serveTraced(w http.ResponseWriter, r *http.Request, start time.Time, rec metric.Recorder, tr tracing.Tracer) {
	var theirs tracing.Link
	if tp := r.Header["Traceparent"]; len(tp) > 0 { // canonical keys: no allocation
		theirs.Traceparent = tp[0]
		if ts := r.Header["Tracestate"]; len(ts) > 0 {
			theirs.Tracestate = ts[0]
		}
	}
	ctx, span := tr.Start(r.Context(), h.spanName, tracing.KindServer, theirs)
	reason := h.serve(w, r, start, tr.Context(ctx))
	rec.Count(metric.Received, h.name, reason, 1)
	rec.Observe(metric.AckLatency, h.name, time.Since(start))
	if span.IsRecording() {
		span.SetAttributes(h.spanAttrs(reason)...)
	}
	span.End()
}

// spanAttrs returns a request span's attributes for an outcome, made once
// per outcome (the reasons are the metrics' labels, a small fixed set)
// and shared read-only.
func (h *Handler) spanAttrs(reason string) []tracing.Attr {
	if a, ok := h.spanAttr.Load(reason); ok {
		return a.([]tracing.Attr)
	}
	a := []tracing.Attr{tracing.String(tracing.AttrSystem, "intake"), tracing.String(tracing.AttrSource, h.name),
		tracing.String(tracing.AttrOperation, "receive"), tracing.String(tracing.AttrOutcome, reason)}
	h.spanAttr.Store(reason, a)
	return a
}

// serve answers the request and returns the reason recorded in metrics.
// created is the request span's context, stored in the event's Meta (a
// zero Link, when not traced, stores nothing).
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, start time.Time, created tracing.Link) string {
	if r.Method != http.MethodPost {
		if r.Method == http.MethodGet && h.get {
			// A handshake (Meta's hub.challenge): answered whether or
			// not the stream runs, as the provider checks the endpoint
			// when it is configured. It never produces an event.
			return h.handshake(w, r)
		}
		w.Header().Set("Allow", h.allow)
		return h.reject(w, http.StatusMethodNotAllowed, "method", nil)
	}
	if h.notify {
		return h.notification(w, r)
	}
	// Not running: answer before reading anything, the provider retries.
	ref := h.sink.Load()
	if ref == nil {
		return h.retryLater(w, http.StatusServiceUnavailable, "not-running", time.Second)
	}
	body, refused := h.readBody(w, r)
	if refused != "" {
		return refused
	}

	e, err := h.verify(r, body)
	if err != nil {
		return h.refuse(w, err)
	}
	if e.Payload == nil {
		e.Payload = body
	}
	if e.ID == "" {
		e.ID = event.ContentID(e) // before anything of the handler's own is added
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if e.Meta == nil {
			e.Meta = make(map[string]string, 1+len(h.keep))
		}
		e.Meta["content-type"] = ct
	}
	for _, name := range h.keep {
		if v := r.Header.Get(name); v != "" {
			if e.Meta == nil {
				e.Meta = make(map[string]string, len(h.keep))
			}
			e.Meta[MetaHeader+name] = v
		}
	}
	e.Source = h.name
	e.Via = event.Webhook
	e.Received = start
	tracing.ToMeta(&e.Meta, created)

	// The default replay guard: the event's key is made of the body,
	// which the signature covers, not of the id or the type, which it
	// does not: a replay under a new id is the same key, a duplicate.
	if h.bodyKey {
		sum := sha256.Sum256(body)
		if e.Meta == nil {
			e.Meta = make(map[string]string, 1)
		}
		e.Meta[event.MetaDedupe] = "body:" + hex.EncodeToString(sum[:16])
	}

	// A guard with a store of its own: the body is claimed beside the id,
	// and so is the body with this id. Only the body makes the key. A body
	// seen before under this id is the same delivery again (a provider's
	// redelivery keeps its id): the stream decides, as it knows whether it
	// is done or dead. Under a new id it is a replay: a duplicate, not
	// handled.
	var guard, guardID string
	if h.guard != nil {
		sum := sha256.Sum256(body)
		guard = event.Key(h.name, "replay:"+hex.EncodeToString(sum[:16]))
		if t := e.Meta[event.MetaTenant]; t != "" { // one tenant's body is not another's replay
			guard = event.TenantKey(t, h.name, "replay:"+hex.EncodeToString(sum[:16]))
		}
		guardID = guard + ":" + e.ID
		st, err := h.guard.Claim(r.Context(), guard, time.Minute)
		if err == nil && st == dedupe.Done {
			var same dedupe.State
			if same, err = h.guard.Claim(r.Context(), guardID, time.Minute); err == nil {
				if same == dedupe.Claimed {
					_ = h.guard.Release(context.WithoutCancel(r.Context()), guardID)
					rec, _ := h.observers()
					rec.Count(metric.Duplicate, h.name, "replay", 1)
					w.WriteHeader(http.StatusOK)
					return "replayed"
				}
				guard = "" // the same delivery: the stream answers
			}
		}
		switch {
		case err != nil:
			h.logs.Log(h.log, slog.LevelError, "replay-guard", "webhook: replay guard unreachable", "source", h.name, "err", err)
			return h.retryLater(w, http.StatusServiceUnavailable, "store", time.Second)
		case st == dedupe.Pending:
			return h.retryLater(w, http.StatusConflict, "pending", time.Second)
		}
	}
	err = store(r.Context(), ref, e)
	if h.hold > 0 && errors.Is(err, event.ErrQueueFull) {
		err = h.holdForRoom(r.Context(), ref, e, err)
	}
	if guard != "" {
		gctx := context.WithoutCancel(r.Context())
		if err == nil || errors.Is(err, event.ErrDuplicate) {
			_ = h.guard.Commit(gctx, guard, replayWindow)
			_ = h.guard.Commit(gctx, guardID, replayWindow)
		} else {
			_ = h.guard.Release(gctx, guard)
		}
	}
	switch {
	case err == nil:
		h.status.Succeeded()
		if !h.writeAck(w, e) {
			w.WriteHeader(http.StatusAccepted)
		}
		if h.log.Enabled(r.Context(), slog.LevelDebug) {
			h.log.Debug("webhook: accepted", "source", h.name, "id", e.ID, "type", e.Type)
		}
		if h.accepted != nil {
			h.accepted(e)
		}
		return "accepted"
	case errors.Is(err, event.ErrDuplicate):
		h.status.Succeeded()
		if !h.writeAck(w, e) {
			w.WriteHeader(http.StatusOK)
		}
		return "duplicate"
	case errors.Is(err, event.ErrPending):
		d, _ := event.RetryDelay(err)
		return h.retryLater(w, http.StatusConflict, "pending", d)
	case errors.Is(err, event.ErrInvalid):
		return h.reject(w, http.StatusBadRequest, "invalid", err)
	}
	reason := "store"
	switch {
	case errors.Is(err, event.ErrQueueFull):
		reason = "full"
	case errors.Is(err, event.ErrNotRunning), errors.Is(err, event.ErrClosed):
		reason = "not-running"
	default:
		// A store outage fails every request alike: sampled.
		h.status.Failed(err)
		h.logs.Log(h.log, slog.LevelError, "store", "webhook: event not stored", "source", h.name, "id", e.ID, "err", err)
	}
	d, _ := event.RetryDelay(err)
	return h.retryLater(w, http.StatusServiceUnavailable, reason, d)
}

// verify runs the verifier on the request: the whole request when it is a
// [RequestVerifier], else its headers and body.
func (h *Handler) verify(r *http.Request, body []byte) (event.Event, error) {
	if sc, ok := h.v.(*Scheme); ok && sc.verifyHB != nil {
		return sc.Verify(r.Header, body) // headers and body are all it reads: no URL to build
	}
	if rv, ok := h.v.(RequestVerifier); ok {
		return rv.VerifyRequest(&Request{Method: r.Method, URL: requestURL(r), Header: r.Header, Body: body, ctx: r.Context()})
	}
	return h.v.Verify(r.Header, body)
}

// refuse answers a request whose verification did not produce an event:
// a handshake's reply, or a rejection.
func (h *Handler) refuse(w http.ResponseWriter, err error) string {
	var reply *Reply
	if errors.As(err, &reply) {
		writeReply(w, reply)
		return "reply"
	}
	switch {
	case errors.Is(err, ErrMalformed):
		return h.reject(w, http.StatusBadRequest, "malformed", err)
	case errors.Is(err, ErrUnknownTenant):
		return h.reject(w, http.StatusNotFound, "unknown-tenant", err)
	case errors.Is(err, ErrSecretLookup):
		h.logs.Log(h.log, slog.LevelError, "secrets", "webhook: secret lookup failed", "source", h.name, "err", err)
		return h.retryLater(w, http.StatusServiceUnavailable, "secrets", time.Second)
	}
	return h.reject(w, http.StatusUnauthorized, reasonOf(err), err)
}

// handshake answers a GET to a scheme whose provider sends one.
func (h *Handler) handshake(w http.ResponseWriter, r *http.Request) string {
	_, err := h.verify(r, nil)
	if err == nil {
		// A verifier that made an event of a GET: nothing is stored
		// from a GET.
		err = malformed("a GET carries no event")
	}
	return h.refuse(w, err)
}

// readBody reads the request's body, within the handler's limit; when it
// cannot, it answers (413 or 400) and returns the reason recorded.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, string) {
	body, err := readBody(w, r, h.maxBody)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, h.reject(w, http.StatusRequestEntityTooLarge, "too-large", nil)
		}
		return nil, h.reject(w, http.StatusBadRequest, "read", err)
	}
	return body, ""
}

// notification answers a notification-only scheme's POST: verified, it
// triggers the paired poller and is answered 200; nothing is stored, so
// the stream need not run (the poller, when it does, catches up).
func (h *Handler) notification(w http.ResponseWriter, r *http.Request) string {
	body, refused := h.readBody(w, r)
	if refused != "" {
		return refused
	}
	if _, err := h.verify(r, body); err != nil {
		return h.refuse(w, err)
	}
	h.trigger()
	h.status.Succeeded()
	w.WriteHeader(http.StatusOK)
	return "triggered"
}

// writeAck writes the scheme's own answer to a stored event, when it has
// one, and reports whether it did.
func (h *Handler) writeAck(w http.ResponseWriter, e event.Event) bool {
	if h.ack == nil {
		return false
	}
	reply := h.ack(e)
	if reply == nil {
		return false
	}
	writeReply(w, reply)
	return true
}

func writeReply(w http.ResponseWriter, reply *Reply) {
	if reply.ContentType != "" {
		w.Header().Set("Content-Type", reply.ContentType)
	}
	// A challenge is echoed: never let a browser sniff it into HTML.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(reply.Status)
	_, _ = w.Write(reply.Body)
}

// holdForRoom puts e again until it is accepted, the hold expires or the
// request ends.
func (h *Handler) holdForRoom(ctx context.Context, sink event.Sink, e event.Event, err error) error {
	deadline := time.Now().Add(h.hold)
	wait := 5 * time.Millisecond
	for errors.Is(err, event.ErrQueueFull) && time.Now().Add(wait).Before(deadline) {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
		err = sink.Put(ctx, e)
	}
	return err
}

func (h *Handler) reject(w http.ResponseWriter, status int, reason string, err error) string {
	h.status.Rejected(reason)
	h.logRejection(status, reason, err)
	http.Error(w, http.StatusText(status), status)
	return reason
}

// logRejection logs a rejected request, at most once a second for each
// reason, so that a flood of bad requests cannot flood the logs; the
// record says how many were left out since the last one. Metrics count
// every rejection.
func (h *Handler) logRejection(status int, reason string, err error) {
	h.logs.Log(h.log, slog.LevelWarn, reason, "webhook: request rejected", "source", h.name, "status", status, "err", err)
}

func (h *Handler) retryLater(w http.ResponseWriter, status int, reason string, d time.Duration) string {
	secs := max(1, int64((d+time.Second-1)/time.Second))
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	http.Error(w, http.StatusText(status), status)
	return reason
}

func reasonOf(err error) string {
	switch {
	case errors.Is(err, ErrNoSecret):
		return "no-secret"
	case errors.Is(err, ErrMissingSignature):
		return "missing-signature"
	case errors.Is(err, ErrMalformedSignature):
		return "malformed-signature"
	case errors.Is(err, ErrTimestamp):
		return "timestamp"
	case errors.Is(err, ErrSignatureMismatch):
		return "signature-mismatch"
	}
	return "unverified"
}

// readBody reads the whole body, but no more than limit bytes: a larger
// body yields an *http.MaxBytesError without the rest being read. Memory
// grows with what arrives, never with what Content-Length declares: at
// most 8 KiB is reserved ahead.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var b bytes.Buffer
	if r.ContentLength > 0 {
		b.Grow(int(min(r.ContentLength, 8<<10)))
	}
	if _, err := b.ReadFrom(body); err != nil {
		return nil, err
	}
	if r.ContentLength >= 0 && int64(b.Len()) != r.ContentLength {
		return nil, errors.New("webhook: body length differs from Content-Length")
	}
	return b.Bytes(), nil
}
