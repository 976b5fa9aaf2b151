// Package fetch turns thin events into full ones at delivery: the
// guide's hybrid, "webhooks for instant notification, then fetch details
// on demand to retrieve the full payload".
//
// Many providers send a notification that names an object (Stripe's thin
// events, Microsoft Graph's resource, a "something changed" with an id)
// and expect the receiver to GET it. A [Fetcher] wraps a Handle function:
// for each event it finds the object, fetches it, and calls the function
// with the event whose Payload is the object, the notification's payload
// kept in Meta. An event is never served by a fetch that started before
// it arrived, so it never sees an older state than the one it announces;
// a burst of notifications about one object shares a fetch in flight and
// one trailing fetch after a minimum gap ([WithMinGap]).
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
	// Gone says the notification is about the object's deletion: there
	// is nothing to fetch, and [Fetcher.Handle] passes the event on
	// unfetched, marked with Meta[MetaGone].
	Gone bool
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

// WithMinGap sets the least time between the starts of two fetches of
// one object (same id and version). An event is never served by a fetch
// that started before it arrived (its Received time): an event that
// comes while a fetch of its object is in flight, or after one ended,
// waits for a trailing fetch, which starts once the one before has
// ended and d has passed since that one started, and serves every event
// that arrived meanwhile. A burst of notifications about one object
// within d costs at most two fetches. A finished fetch also serves, for
// d after it ended, the events that arrived before it started (a
// backlog, a retry). Defaults to one second; zero starts the trailing
// fetch as soon as the one in flight ends. It panics if d is negative.
func WithMinGap(d time.Duration) Option {
	if d < 0 {
		panic(fmt.Sprintf("fetch: WithMinGap(%v): negative", d))
	}
	return func(f *Fetcher) { f.gap = d }
}

// WithLimiter makes every fetch wait for l: give it the limiter of the
// poller of the same API. Defaults to none: fetches wait only for the
// minimum gap per object.
func WithLimiter(l *rate.Limiter) Option { return func(f *Fetcher) { f.limiter = l } }

// WithMetrics records fetches, coalesced events and errors (the counters
// metric.Fetched, metric.Coalesced, metric.FetchFailed, by source).
// Defaults to none ([Fetcher.Stats] counts all the same).
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
	gap     time.Duration
	limiter *rate.Limiter
	rec     metric.Recorder
	tracer  tracing.Tracer
	now     func() time.Time

	mu      sync.Mutex
	objects map[string]*fetches // by id and version

	fetches, coalesced, errs atomic.Int64
}

// fetches are one object's: the last fetch started, and the trailing one
// that waits for it and the gap.
type fetches struct {
	cur  *flight // nil before the first
	next *flight // nil when no event waits for a newer state
}

// flight is one fetch of an object, shared by the events that wait for
// it. start, end, body and err are written under Fetcher.mu; done is
// closed once they are final.
type flight struct {
	start time.Time     // when the request began; zero while it waits for the limiter
	end   time.Time     // when it ended; zero while in flight
	done  chan struct{} // closed when it ended
	gone  chan struct{} // a trailing fetch's: closed if its leader gave up before starting it
	body  []byte
	err   error
}

// serves reports whether fl may serve an event that arrived at since:
// it started no sooner, and is in flight or ended well within the gap.
func (fl *flight) serves(since, now time.Time, gap time.Duration) bool {
	if fl == nil {
		return false
	}
	if fl.start.IsZero() {
		return true // waiting for the limiter: its request is still to come
	}
	if fl.start.Before(since) {
		return false
	}
	return fl.end.IsZero() || (fl.err == nil && now.Sub(fl.end) < gap)
}

// New returns a Fetcher: object says which object an event is about
// (false: the event is complete, and passes through), get fetches it
// ([HTTP] for the usual GET).
func New(object func(e event.Event) (Object, bool), get Func, opts ...Option) *Fetcher {
	if object == nil || get == nil {
		panic("fetch: New with a nil function")
	}
	f := &Fetcher{object: object, get: get, gap: time.Second, rec: metric.Discard{}, now: time.Now, objects: map[string]*fetches{}}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Stats returns the Fetcher's counters.
func (f *Fetcher) Stats() Stats {
	return Stats{Fetches: f.fetches.Load(), Coalesced: f.coalesced.Load(), Errors: f.errs.Load()}
}

// MetaGone is the Meta key set to "true" on an event about an object the
// notification says no longer exists ([Object].Gone): it is passed to the
// handler unfetched, its Payload the notification.
const MetaGone = "fetch:gone"

// Handle returns a function for intake's Stream.Handle that calls next
// with each event made full: its Payload the fetched object, the
// notification's payload in Meta[MetaNotification]. An event about no
// object is passed as it is; one about an object that is gone (a
// deletion) is passed unfetched with Meta[MetaGone] set. A fetch that
// fails is returned as the handler's error: the stream retries the event
// (no sooner than the API's Retry-After, when the error carries one) and
// dead-letters it after its attempts.
func (f *Fetcher) Handle(next func(ctx context.Context, e event.Event) error) func(ctx context.Context, e event.Event) error {
	if next == nil {
		panic("fetch: Handle with a nil function")
	}
	return func(ctx context.Context, e event.Event) error {
		o, ok := f.object(e)
		if !ok {
			return next(ctx, e)
		}
		meta := make(map[string]string, len(e.Meta)+1)
		for k, v := range e.Meta {
			meta[k] = v
		}
		if o.Gone {
			meta[MetaGone] = "true"
			e.Meta = meta
			return next(ctx, e)
		}
		since := e.Received
		if since.IsZero() {
			since = f.now() // not through a stream: only a fetch from now on
		}
		body, err := f.Fetch(ctx, e.Source, o, since)
		if err != nil {
			return fmt.Errorf("fetch %s: %w", o.ID, err)
		}
		meta[MetaNotification] = string(e.Payload)
		e.Meta, e.Payload = meta, body
		return next(ctx, e)
	}
}

// Fetch returns the object's state as answered by a request that started
// at or after since (the time the event about it arrived): a fetch in
// flight or just ended that started no sooner, or the trailing fetch it
// starts or waits for (see [WithMinGap]). source names the events'
// source in metrics. It returns ctx's error if ctx ends first.
func (f *Fetcher) Fetch(ctx context.Context, source string, o Object, since time.Time) ([]byte, error) {
	key := o.ID + "\x00" + o.Version
	for {
		f.mu.Lock()
		now := f.now()
		fs := f.objects[key]
		if fs == nil {
			fs = &fetches{}
			f.objects[key] = fs
		}
		if fl := fs.cur; fl.serves(since, now, f.gap) {
			f.mu.Unlock()
			f.coalesce(source)
			return wait(ctx, fl)
		}
		if fl := fs.next; fl != nil {
			f.mu.Unlock()
			f.coalesce(source)
			select {
			case <-fl.done:
				return fl.body, fl.err
			case <-fl.gone:
				continue // its leader gave up: lead one of our own
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		fl := &flight{done: make(chan struct{})}
		if prev := fs.cur; prev != nil && prev.err == nil && (prev.end.IsZero() || now.Before(prev.start.Add(f.gap))) {
			// The trailing fetch: after the one in flight, and the gap.
			fl.gone = make(chan struct{})
			fs.next = fl
			f.mu.Unlock()
			if err := f.waitTurn(ctx, prev); err != nil {
				f.mu.Lock()
				if fs.next == fl {
					fs.next = nil
				}
				f.mu.Unlock()
				close(fl.gone)
				return nil, err
			}
			f.mu.Lock()
			fs.next = nil
		}
		fs.cur = fl
		if len(f.objects) > 1024 {
			f.pruneLocked(now)
		}
		f.mu.Unlock()
		return f.run(ctx, source, o, fl)
	}
}

func (f *Fetcher) coalesce(source string) {
	f.coalesced.Add(1)
	if f.rec != nil {
		f.rec.Count(metric.Coalesced, source, "", 1)
	}
}

// wait returns fl's answer, or ctx's error.
func wait(ctx context.Context, fl *flight) ([]byte, error) {
	select {
	case <-fl.done:
		return fl.body, fl.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// waitTurn waits until prev has ended and the gap since its start has
// passed.
func (f *Fetcher) waitTurn(ctx context.Context, prev *flight) error {
	select {
	case <-prev.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	d := prev.start.Add(f.gap).Sub(f.now())
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run waits for the limiter, makes the request of fl and tells its
// waiters. fl's start is the request's: the events that arrive while it
// waits for the limiter are served by it too.
func (f *Fetcher) run(ctx context.Context, source string, o Object, fl *flight) ([]byte, error) {
	var span tracing.Span
	if f.tracer != nil {
		ctx, span = f.tracer.Start(ctx, "fetch "+o.ID, tracing.KindClient, tracing.Link{})
	}
	var body []byte
	var err error
	if f.limiter != nil {
		err = f.limiter.Wait(ctx)
	}
	f.mu.Lock()
	fl.start = f.now()
	f.mu.Unlock()
	if err == nil {
		body, err = f.fetch(ctx, o)
	}
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
	fl.body, fl.err, fl.end = body, err, f.now()
	f.mu.Unlock()
	close(fl.done)
	f.fetches.Add(1)
	if f.rec != nil {
		f.rec.Count(metric.Fetched, source, "", 1)
	}
	if err != nil {
		f.errs.Add(1)
		if f.rec != nil {
			f.rec.Count(metric.FetchFailed, source, "", 1)
		}
	}
	return body, err
}

// fetch fetches; a panic is a failed fetch.
func (f *Fetcher) fetch(ctx context.Context, o Object) (body []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("fetch: panicked: %v", r)
		}
	}()
	return f.get(ctx, o)
}

// pruneLocked forgets the objects whose last fetch ended more than the
// gap ago and that no event waits on. f.mu is held.
func (f *Fetcher) pruneLocked(now time.Time) {
	for k, fs := range f.objects {
		if fs.next == nil && fs.cur != nil && !fs.cur.end.IsZero() && now.Sub(fs.cur.end) >= f.gap {
			delete(f.objects, k)
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

// FailureClass makes a 4xx answer a permanent failure ([event.Permanent]:
// the event is dead at once, to replay once the cause is fixed, instead of
// spending its attempts on an answer that will not change), except 408,
// 425 and 429, which are worth retrying; any other answer is transient.
func (e *StatusError) FailureClass() event.Class {
	switch {
	case e.Code == http.StatusRequestTimeout || e.Code == http.StatusTooEarly || e.Code == http.StatusTooManyRequests:
		return event.Transient
	case e.Code >= 400 && e.Code < 500:
		return event.Permanent
	}
	return event.Transient
}

// ErrTooLarge is returned, wrapped, when a response is over the limit.
var ErrTooLarge = errors.New("fetch: response too large")

// defaultMaxBody is the largest object an HTTP fetch reads by default.
const defaultMaxBody = 8 << 20

// HTTPOption configures [HTTP].
type HTTPOption func(*httpConfig)

type httpConfig struct{ maxBody int64 }

// WithMaxBody sets the largest response an [HTTP] fetch reads: a longer
// one is an error wrapping [ErrTooLarge] (a failed attempt). Defaults to
// 8 MiB; it panics if n is not positive.
func WithMaxBody(n int64) HTTPOption {
	if n <= 0 {
		panic(fmt.Sprintf("fetch: WithMaxBody(%d): not positive", n))
	}
	return func(c *httpConfig) { c.maxBody = n }
}

// HTTP returns a Func that GETs an object: build makes the request (the
// URL from o.URL, or one of its own, with the API's credentials), client
// sends it. A 2xx answer's body is the object, up to [WithMaxBody] (8 MiB
// by default); a 429 or 503 is an error carrying the API's Retry-After
// ([event.RetryDelay]), which the stream waits out before the retry; any
// other status an error ([StatusError]).
func HTTP(client *http.Client, build func(ctx context.Context, o Object) (*http.Request, error), opts ...HTTPOption) Func {
	c := httpConfig{maxBody: defaultMaxBody}
	for _, o := range opts {
		o(&c)
	}
	maxBody := c.maxBody
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
		if int64(len(body)) > maxBody {
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
