// Package fetch turns thin events into full ones at delivery: the
// guide's hybrid, "webhooks for instant notification, then fetch details
// on demand to retrieve the full payload".
//
// Many providers send a notification that names an object (Stripe's thin
// events, Microsoft Graph's resource, a "something changed" with an id)
// and expect the receiver to GET it. A [Fetcher] wraps a Handle function:
// for each event it finds the object, fetches it (once for all the events
// about it within a window: a burst of notifications about one object
// costs one request), and calls the function with the event whose
// Payload is the object, the notification's payload kept in Meta.
//
// The fetch runs after the queue, never before the webhook's 2xx, so the
// fast ack holds and a durable queue stores the thin event: a crash
// mid-fetch refetches after the restart. A failed fetch is a failed
// attempt of the handler: retried with the subscription's backoff (no
// sooner than a Retry-After the API sent), dead-lettered after its
// attempts, replayable. Share the poller's [rate.Limiter] of the same API
// ([WithLimiter]) so that polls and fetches together stay within its
// rate.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/tracing"
)

// MetaNotification is the Meta key under which a fetched event keeps the
// payload of the notification it was made from.
const MetaNotification = "fetch:notification"

// Object names what a thin event is about: the id that coalesces fetches,
// the version where the provider gives one (a newer version is fetched
// again within the window), and the URL an [HTTP] fetch GETs.
type Object struct {
	ID      string
	Version string
	URL     string
}

// Func fetches the current state of an object.
type Func func(ctx context.Context, o Object) ([]byte, error)

// Stats are a Fetcher's counters since it was made.
type Stats struct {
	Fetches   int64 // requests made
	Coalesced int64 // events served by another event's fetch (in flight or within the window)
	Errors    int64 // fetches that failed
}

// Option configures a [Fetcher].
type Option func(*Fetcher)

// WithWindow sets how long a fetched object serves the events about it
// (same id and version) that come after: a burst of notifications about
// one object within the window costs one fetch. Defaults to one second;
// zero keeps only the coalescing of fetches in flight. It panics if d is
// negative.
func WithWindow(d time.Duration) Option {
	if d < 0 {
		panic(fmt.Sprintf("fetch: WithWindow(%v): negative", d))
	}
	return func(f *Fetcher) { f.window = d }
}

// WithLimiter makes every fetch wait for l: give it the limiter of the
// poller of the same API.
func WithLimiter(l *rate.Limiter) Option { return func(f *Fetcher) { f.limiter = l } }

// WithMetrics records fetches, coalesced events and errors (the counters
// metric.Fetched, metric.Coalesced, metric.FetchFailed, by source).
func WithMetrics(r metric.Recorder) Option { return func(f *Fetcher) { f.rec = r } }

// WithTracer makes each fetch a client span ("fetch" and the object's
// id), a child of the handler's span when the stream traces: see package
// [tracing]. A fetch shared with another event's gets none of its own.
// Default: no spans.
func WithTracer(t tracing.Tracer) Option { return func(f *Fetcher) { f.tracer = t } }

// Fetcher fetches the objects thin events name; see [New]. It is safe for
// concurrent use.
type Fetcher struct {
	object  func(e event.Event) (Object, bool)
	get     Func
	window  time.Duration
	limiter *rate.Limiter
	rec     metric.Recorder
	tracer  tracing.Tracer
	now     func() time.Time

	mu      sync.Mutex
	flights map[string]*flight // by id and version: in flight, or done within the window

	fetches, coalesced, errs atomic.Int64
}

// flight is one fetch of an object, shared by the events that wait for
// it, and kept for the window once done.
type flight struct {
	done chan struct{}
	body []byte
	err  error
	at   time.Time // when it ended
}

// New returns a Fetcher: object says which object an event is about
// (false: the event is complete, and passes through), get fetches it
// ([HTTP] for the usual GET).
func New(object func(e event.Event) (Object, bool), get Func, opts ...Option) *Fetcher {
	if object == nil || get == nil {
		panic("fetch: New with a nil function")
	}
	f := &Fetcher{object: object, get: get, window: time.Second, rec: metric.Discard{}, now: time.Now, flights: map[string]*flight{}}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Stats returns the Fetcher's counters.
func (f *Fetcher) Stats() Stats {
	return Stats{Fetches: f.fetches.Load(), Coalesced: f.coalesced.Load(), Errors: f.errs.Load()}
}

// Handle returns a function for intake's Stream.Handle that calls next
// with each event made full: its Payload the fetched object, the
// notification's payload in Meta[MetaNotification]. An event about no
// object is passed as it is. A fetch that fails is returned as the
// handler's error: the stream retries the event (no sooner than the
// API's Retry-After, when the error carries one) and dead-letters it
// after its attempts.
func (f *Fetcher) Handle(next func(ctx context.Context, e event.Event) error) func(ctx context.Context, e event.Event) error {
	if next == nil {
		panic("fetch: Handle with a nil function")
	}
	return func(ctx context.Context, e event.Event) error {
		o, ok := f.object(e)
		if !ok {
			return next(ctx, e)
		}
		body, err := f.Fetch(ctx, e.Source, o)
		if err != nil {
			return fmt.Errorf("fetch %s: %w", o.ID, err)
		}
		meta := make(map[string]string, len(e.Meta)+1)
		for k, v := range e.Meta {
			meta[k] = v
		}
		meta[MetaNotification] = string(e.Payload)
		e.Meta, e.Payload = meta, body
		return next(ctx, e)
	}
}

// Fetch returns the object's current state: fetched, or shared with a
// fetch of the same id and version in flight or done within the window.
// source names the events' source in metrics.
func (f *Fetcher) Fetch(ctx context.Context, source string, o Object) ([]byte, error) {
	key := o.ID + "\x00" + o.Version
	f.mu.Lock()
	now := f.now()
	fl, ok := f.flights[key]
	// In flight, or done within the window (a failed one is not kept).
	if ok && (fl.at.IsZero() || now.Sub(fl.at) < f.window) {
		f.mu.Unlock()
		f.coalesced.Add(1)
		f.rec.Count(metric.Coalesced, source, "", 1)
		select {
		case <-fl.done:
			return fl.body, fl.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	fl = &flight{done: make(chan struct{})}
	f.flights[key] = fl
	if len(f.flights) > 1024 {
		f.pruneLocked(now)
	}
	f.mu.Unlock()

	var span tracing.Span
	if f.tracer != nil {
		ctx, span = f.tracer.Start(ctx, "fetch "+o.ID, tracing.KindClient, tracing.Link{})
	}
	body, err := f.fetch(ctx, o)
	if span != nil {
		if span.IsRecording() {
			span.SetAttributes(tracing.String(tracing.AttrSource, source), tracing.String("intake.object.id", o.ID),
				tracing.String("intake.object.version", o.Version))
			if err != nil {
				span.Fail(err)
			}
		}
		span.End()
	}
	f.mu.Lock()
	fl.body, fl.err, fl.at = body, err, f.now()
	if err != nil || f.window == 0 {
		delete(f.flights, key) // an error is not kept: the retry fetches again
	}
	f.mu.Unlock()
	close(fl.done)
	f.fetches.Add(1)
	f.rec.Count(metric.Fetched, source, "", 1)
	if err != nil {
		f.errs.Add(1)
		f.rec.Count(metric.FetchFailed, source, "", 1)
	}
	return body, err
}

// fetch waits for the limiter and fetches; a panic is a failed fetch.
func (f *Fetcher) fetch(ctx context.Context, o Object) (body []byte, err error) {
	if f.limiter != nil {
		if err := f.limiter.Wait(ctx); err != nil {
			return nil, err
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fetch: panicked: %v", r)
		}
	}()
	return f.get(ctx, o)
}

// pruneLocked forgets the fetches done before the window. f.mu is held.
func (f *Fetcher) pruneLocked(now time.Time) {
	for k, fl := range f.flights {
		if !fl.at.IsZero() && now.Sub(fl.at) >= f.window {
			delete(f.flights, k)
		}
	}
}

// StatusError is a non-2xx answer to a fetch. Body holds at most the
// first 256 bytes of the response.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string { return fmt.Sprintf("fetch: HTTP %d: %q", e.Code, e.Body) }

// ErrTooLarge is returned, wrapped, when a response is over the limit.
var ErrTooLarge = errors.New("fetch: response too large")

// maxBody is the largest object an HTTP fetch reads.
const maxBody = 8 << 20

// HTTP returns a Func that GETs an object: build makes the request (the
// URL from o.URL, or one of its own, with the API's credentials), client
// sends it. A 2xx answer's body is the object; a 429 or 503 is an error
// carrying the API's Retry-After ([event.RetryDelay]), which the stream
// waits out before the retry; any other status an error ([StatusError]).
func HTTP(client *http.Client, build func(ctx context.Context, o Object) (*http.Request, error)) Func {
	if client == nil {
		client = http.DefaultClient
	}
	if build == nil {
		build = func(ctx context.Context, o Object) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
		}
	}
	return func(ctx context.Context, o Object) ([]byte, error) {
		req, err := build(ctx, o)
		if err != nil {
			return nil, fmt.Errorf("fetch: build request: %w", err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
		if err != nil {
			return nil, fmt.Errorf("fetch: read response: %w", err)
		}
		if len(body) > maxBody {
			return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, maxBody)
		}
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			excerpt := body[:min(len(body), 256)]
			serr := &StatusError{Code: resp.StatusCode, Body: string(excerpt)}
			if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
				if d, ok := poller.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
					return nil, event.RetryAfter(d, serr)
				}
			}
			return nil, serr
		}
		return body, nil
	}
}
