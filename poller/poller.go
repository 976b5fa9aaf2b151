// Package poller asks an API for new events on a schedule, politely, and
// puts them into a sink (an intake stream) in order, advancing its cursor
// only once every event of a page is stored.
//
// A [Poller] asks a [Fetcher] for the [Page] after its cursor every
// interval (with jitter). A page says everything the API said: its events,
// the cursor to resume from, whether more pages are ready now, a delay the
// server asked for, and whether nothing changed. The poller backs off
// exponentially on errors and never gives up, honours server-given delays
// (capped), shares a [rate.Limiter] with other pollers of the same API,
// drains a backlog at once, and polls soon when [Poller.Trigger] is called
// (the hybrid pattern triggers a poll from a webhook's arrival), never
// sooner than a minimum gap. [FetchFunc] adapts a function; [HTTP] builds a
// Fetcher for JSON list APIs with conditional requests, Retry-After and
// rate-limit headers, and Link pagination.
//
// A poller is an [event.Source]: add it to a stream, or call Run with any
// [event.Sink].
package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/time/rate"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/logsample"
	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/tracing"
)

// Page is what one fetch found: everything a page of an API says, read
// in one place.
type Page struct {
	// Events are the page's events, in order. An event without an ID gets
	// [event.ContentID].
	Events []event.Event

	// Next is the cursor to fetch from next; "" keeps the current one. The
	// poller saves it to the checkpoint once every event of the page is
	// stored, and a restart fetches from it: it must be enough to resume
	// (a fetch may encode in it what it needs, as [HTTP] does).
	Next string

	// More says another page is ready now: the poller fetches again at
	// once, up to [WithMaxPages] pages a poll.
	More bool

	// Wait is the least delay the server asked for before the next
	// request (a rate limit spent, a longer poll interval), capped by
	// [WithMaxRetryAfter]. It holds against triggers too.
	Wait time.Duration

	// NotModified says the server answered that nothing changed (an HTTP
	// 304); it is counted.
	NotModified bool
}

// Fetcher fetches the page after a cursor. [FetchFunc] adapts a function;
// [HTTP] builds one for JSON list APIs.
//
// Fetch is called with a context that ends when the poll must stop. An
// error stops the poll and backs off: wrap it with [event.RetryAfter] to
// ask for at least that delay, or return [ErrCursorExpired] to restart from
// the initial cursor. A panic counts as an error.
type Fetcher interface {
	Fetch(ctx context.Context, cursor string) (Page, error)
}

// FetchFunc adapts a function to a [Fetcher].
type FetchFunc func(ctx context.Context, cursor string) (Page, error)

// Fetch calls f(ctx, cursor).
func (f FetchFunc) Fetch(ctx context.Context, cursor string) (Page, error) { return f(ctx, cursor) }

// ErrCursorExpired is returned, wrapped, by a fetch whose cursor the
// provider no longer accepts (an HTTP 410 Gone). The poller starts over
// from its initial cursor; the stream's idempotency store keeps events
// already delivered from being delivered again.
var ErrCursorExpired = errors.New("poller: cursor expired")

// Checkpoint stores each poller's cursor so that a restart resumes where
// the last run stopped. Implementations must be safe for concurrent use.
type Checkpoint interface {
	// Load returns the saved cursor, or "" if there is none.
	Load(ctx context.Context, name string) (string, error)
	Save(ctx context.Context, name, cursor string) error
}

// MemoryCheckpoint is a [Checkpoint] in memory, the default: it survives a
// restart of Run but not of the process. The zero value is ready to use.
type MemoryCheckpoint struct {
	mu sync.Mutex
	m  map[string]string
}

// Load implements [Checkpoint].
func (c *MemoryCheckpoint) Load(_ context.Context, name string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name], nil
}

// Save implements [Checkpoint].
func (c *MemoryCheckpoint) Save(_ context.Context, name, cursor string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]string)
	}
	c.m[name] = cursor
	return nil
}

// Lease elects the one replica that polls a source. Acquire and Renew
// report whether the caller holds the lease for ttl from now. Backends
// provide database-backed leases; the default always leads.
type Lease interface {
	Acquire(ctx context.Context, name string, ttl time.Duration) (bool, error)
	Renew(ctx context.Context, name string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, name string) error
}

type alwaysLeader struct{}

func (alwaysLeader) Acquire(context.Context, string, time.Duration) (bool, error) { return true, nil }
func (alwaysLeader) Renew(context.Context, string, time.Duration) (bool, error)   { return true, nil }
func (alwaysLeader) Release(context.Context, string) error                        { return nil }

// Poller polls one source. Create it with [New] and run it with Run (or
// add it to a stream). Trigger and Stats may be called from any goroutine.
type Poller struct {
	name  string
	fetch Fetcher
	cfg   config

	trigger chan struct{}
	running atomic.Bool
	logs    logsample.Sampler // repeated errors: at most once a second per reason
	status  event.StatusRecorder
	stats   struct {
		polls, empty, notModified, events, duplicates, invalid, errors atomic.Int64
	}
}

// Option configures a [Poller]. A zero value given to an option means its
// documented default; a negative one (or one out of range) makes the
// option panic, since it could only turn into a busy loop.
type Option func(*config)

type config struct {
	interval      time.Duration
	jitter        float64
	minGap        time.Duration
	backoffMin    time.Duration
	backoffMax    time.Duration
	maxRetryAfter time.Duration
	limiter       *rate.Limiter
	greedy        int
	maxPages      int
	checkpoint    Checkpoint
	initial       string
	lease         Lease
	leaseTTL      time.Duration
	longPoll      bool
	keepSource    bool
	log           *slog.Logger
	rec           metric.Recorder
	recSet        bool // WithMetrics was given: the stream's recorder is not used
	tracerSet     bool // WithTracer was given
	tracer        tracing.Tracer
}

// The defaults, each written in its option's doc.
const (
	defaultInterval      = 30 * time.Second
	defaultJitter        = 0.1
	defaultMinGap        = time.Second
	defaultBackoffMin    = time.Second
	defaultBackoffMax    = 5 * time.Minute
	defaultMaxRetryAfter = 15 * time.Minute
	defaultMaxPages      = 10
	defaultLeaseTTL      = 30 * time.Second
)

func positive(option string, d, def time.Duration) time.Duration {
	switch {
	case d < 0:
		panic(fmt.Sprintf("poller: %s(%v): must not be negative (0 means the default, %v)", option, d, def))
	case d == 0:
		return def
	}
	return d
}

// Every sets the interval between polls. Defaults to 30 seconds.
func Every(d time.Duration) Option {
	d = positive("Every", d, defaultInterval)
	return func(c *config) { c.interval = d }
}

// WithJitter spreads each interval uniformly by ±f of itself so that a
// fleet of pollers does not synchronise. f must be in [0, 1). Defaults to
// 0.1; WithJitter(0) turns jitter off.
func WithJitter(f float64) Option {
	if f < 0 || f >= 1 || f != f {
		panic(fmt.Sprintf("poller: WithJitter(%v): must be in [0, 1)", f))
	}
	return func(c *config) { c.jitter = f }
}

// WithMinGap sets the least time between the starts of two polls that
// [Poller.Trigger] can cause: triggers that come sooner wait for the gap
// (and for the limiter, if any), and coalesce meanwhile. It bounds what a
// burst of webhooks with an OnAccepted trigger can ask of the API.
// Defaults to 1 second.
func WithMinGap(d time.Duration) Option {
	d = positive("WithMinGap", d, defaultMinGap)
	return func(c *config) { c.minGap = d }
}

// WithBackoff sets the exponential backoff after failed polls: initial
// after the first failure, doubling up to max, each ±20%, and reset by a
// success. It never gives up. Defaults to 1 second and 5 minutes; it
// panics if initial exceeds max.
func WithBackoff(initial, max time.Duration) Option {
	initial = positive("WithBackoff", initial, defaultBackoffMin)
	max = positive("WithBackoff", max, defaultBackoffMax)
	if initial > max {
		panic(fmt.Sprintf("poller: WithBackoff(%v, %v): the initial delay exceeds the maximum", initial, max))
	}
	return func(c *config) { c.backoffMin, c.backoffMax = initial, max }
}

// WithMaxRetryAfter caps a server-given delay (Retry-After, rate-limit
// reset, X-Poll-Interval, [Page.Wait]) so that a broken or hostile header
// cannot park the poller. Defaults to 15 minutes.
func WithMaxRetryAfter(d time.Duration) Option {
	d = positive("WithMaxRetryAfter", d, defaultMaxRetryAfter)
	return func(c *config) { c.maxRetryAfter = d }
}

// WithLimiter makes every fetch wait for l. Share one limiter among the
// pollers of one API key. Defaults to no limit.
func WithLimiter(l *rate.Limiter) Option { return func(c *config) { c.limiter = l } }

// Greedy makes the poller fetch again at once, instead of waiting an
// interval, after a page of at least pageSize events, so that a backlog
// drains fast (within the page cap and the limiter). Defaults to off (0).
func Greedy(pageSize int) Option {
	if pageSize < 0 {
		panic(fmt.Sprintf("poller: Greedy(%d): must not be negative (0 turns it off)", pageSize))
	}
	return func(c *config) { c.greedy = pageSize }
}

// WithMaxPages caps the pages fetched back to back in one poll, by
// pagination or greedy mode. Defaults to 10.
func WithMaxPages(n int) Option {
	if n < 0 {
		panic(fmt.Sprintf("poller: WithMaxPages(%d): must not be negative (0 means the default, %d)", n, defaultMaxPages))
	}
	if n == 0 {
		n = defaultMaxPages
	}
	return func(c *config) { c.maxPages = n }
}

// LongPoll is for a fetch that waits at the server until there is
// something (a relay's feed, a blocking query): the poller asks again at
// once after each poll instead of waiting an interval, but no sooner than
// [WithMinGap] after the start of a poll that brought nothing, so that a
// server that does not hold the request cannot make it spin. Backoff on
// errors is as usual. Defaults to off.
func LongPoll() Option { return func(c *config) { c.longPoll = true } }

// KeepSource keeps the Source of fetched events that have one, instead of
// the poller's name: for a fetch that relays events of several sources
// (a relay's feed), so that their idempotency keys stay those of the
// provider's own webhook and poller. Defaults to off.
func KeepSource() Option { return func(c *config) { c.keepSource = true } }

// WithCheckpoint sets where the cursor is saved. Defaults to a
// [MemoryCheckpoint] of the poller's own.
func WithCheckpoint(cp Checkpoint) Option { return func(c *config) { c.checkpoint = cp } }

// WithInitialCursor sets the cursor used when no checkpoint exists and
// after [ErrCursorExpired]. Defaults to "".
func WithInitialCursor(cursor string) Option { return func(c *config) { c.initial = cursor } }

// WithLease makes the poller poll only while it holds l for its name. It
// renews the lease every ttl/3, gives each Acquire and Renew ttl/4 to
// answer, and stops polling as soon as a renewal fails or does not answer
// in time, before the lease can have run out. ttl defaults to 30 seconds.
// Defaults to always leading.
func WithLease(l Lease, ttl time.Duration) Option {
	ttl = positive("WithLease", ttl, defaultLeaseTTL)
	return func(c *config) { c.lease, c.leaseTTL = l, ttl }
}

// WithLogger sets the logger. Defaults to [slog.Default].
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithMetrics sets the metrics recorder. Defaults to the recorder of the
// stream the poller is added to (intake.WithMetrics), and to
// [metric.Discard] without one.
func WithMetrics(r metric.Recorder) Option { return func(c *config) { c.rec, c.recSet = r, true } }

// WithTracer makes each page fetched and stored a client span ("poll"
// and the source's name), whose context every event of the page carries
// in its Meta (see package [tracing]): the creation context its deliveries
// link to. Default: no spans.
func WithTracer(t tracing.Tracer) Option { return func(c *config) { c.tracer, c.tracerSet = t, true } }

// New returns a poller named name (the Source of its events: give a
// provider's poller and webhook handler the same name so that the stream
// dedupes across both) that fetches pages with f. It panics if f is nil.
func New(name string, f Fetcher, opts ...Option) *Poller {
	if f == nil {
		panic("poller: New with a nil Fetcher")
	}
	cfg := config{
		interval:      defaultInterval,
		jitter:        defaultJitter,
		minGap:        defaultMinGap,
		backoffMin:    defaultBackoffMin,
		backoffMax:    defaultBackoffMax,
		maxRetryAfter: defaultMaxRetryAfter,
		maxPages:      defaultMaxPages,
		lease:         alwaysLeader{},
		leaseTTL:      defaultLeaseTTL,
		log:           slog.Default(),
		rec:           metric.Discard{},
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.checkpoint == nil {
		cfg.checkpoint = &MemoryCheckpoint{}
	}
	if cfg.lease == nil {
		cfg.lease = alwaysLeader{}
	}
	return &Poller{name: name, fetch: f, cfg: cfg, trigger: make(chan struct{}, 1)}
}

// Name implements [event.Source].
func (p *Poller) Name() string { return p.name }

// Via returns [event.Poll]: the path the poller's events come by, as the
// stream's health lists it.
func (p *Poller) Via() event.Via { return event.Poll }

// Status implements [event.Reporter]: the last poll that stored its pages,
// and the last that failed.
func (p *Poller) Status() event.Status { return p.status.Status() }

// Trigger asks for a poll now, or as soon as the minimum gap since the
// last poll ([WithMinGap]) and the limiter allow. Triggers that arrive
// meanwhile coalesce into one poll. It never blocks.
func (p *Poller) Trigger() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// Stats are a poller's counters since it was created.
type Stats struct {
	Polls       int64 // fetch calls
	Empty       int64 // fetches that returned no event
	NotModified int64 // pages the server said were unchanged ([Page.NotModified])
	Events      int64 // events stored
	Duplicates  int64 // events the stream already had
	Invalid     int64 // events the stream refused as invalid, skipped (see [event.ErrInvalid])
	Errors      int64 // failed fetches or puts
}

// Stats returns the poller's counters.
func (p *Poller) Stats() Stats {
	s := &p.stats
	return Stats{
		Polls: s.polls.Load(), Empty: s.empty.Load(), NotModified: s.notModified.Load(), Events: s.events.Load(),
		Duplicates: s.duplicates.Load(), Invalid: s.invalid.Load(), Errors: s.errors.Load(),
	}
}

// ErrAlreadyRunning is returned by Run when the poller is running already.
var ErrAlreadyRunning = errors.New("poller: already running")

// Run polls until ctx is done, then returns nil. It implements
// [event.Source]. Errors never end it: fetch and store failures (and a
// fetch that panics) back off and retry, and the cursor never moves past
// an event that is not stored.
func (p *Poller) Run(ctx context.Context, sink event.Sink) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer p.running.Store(false)
	// Without a recorder or tracer of its own, the stream's (read only
	// by this Run's goroutines).
	if m, ok := sink.(interface{ Metrics() metric.Recorder }); ok && !p.cfg.recSet {
		p.cfg.rec = m.Metrics()
	}
	if t, ok := sink.(interface{ Tracer() tracing.Tracer }); ok && !p.cfg.tracerSet {
		p.cfg.tracer = t.Tracer()
	}
	for ctx.Err() == nil {
		if !p.lead(ctx) {
			break
		}
		p.whileLeading(ctx, sink)
	}
	return nil
}

// whileLeading polls while the lease holds, then releases it. The renewer
// goroutine ends before it returns, whatever the poll did.
func (p *Poller) whileLeading(ctx context.Context, sink event.Sink) {
	leadCtx, cancel := context.WithCancel(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		p.renew(leadCtx, cancel)
	}()
	defer func() {
		cancel()
		<-renewed
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.leaseTTL/4)
		if err := p.cfg.lease.Release(rctx, p.name); err != nil {
			p.cfg.log.Warn("poller: lease release failed", "source", p.name, "err", err)
		}
		rcancel()
	}()
	p.poll(leadCtx, sink)
}

// lead blocks until the poller holds the lease, or ctx is done. Each
// Acquire gets a quarter of the lease to answer.
func (p *Poller) lead(ctx context.Context) bool {
	for {
		actx, cancel := context.WithTimeout(ctx, p.cfg.leaseTTL/4)
		ok, err := p.cfg.lease.Acquire(actx, p.name, p.cfg.leaseTTL)
		cancel()
		if err != nil && ctx.Err() == nil {
			p.logs.Log(p.cfg.log, slog.LevelWarn, "lease-acquire", "poller: lease acquire failed", "source", p.name, "err", err)
		}
		if ok && err == nil {
			return true
		}
		if !sleep(ctx, p.cfg.leaseTTL/3) {
			return false
		}
	}
}

// renew keeps the lease until ctx is done: every ttl/3 a Renew with ttl/4
// to answer. When one fails, says no, or does not answer in time, it
// cancels the polling at once: the lease may be lost, and it ran at most
// ttl/4 + ttl/3 + ttl/4 < ttl since the last renewal was sent.
func (p *Poller) renew(ctx context.Context, lost context.CancelFunc) {
	for sleep(ctx, p.cfg.leaseTTL/3) {
		rctx, cancel := context.WithTimeout(ctx, p.cfg.leaseTTL/4)
		ok, err := p.cfg.lease.Renew(rctx, p.name, p.cfg.leaseTTL)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil || !ok {
			p.cfg.log.Warn("poller: lease lost; polling stops", "source", p.name, "err", err)
			lost()
			return
		}
	}
}

// poll is the polling loop of a leader. It returns when ctx is done.
func (p *Poller) poll(ctx context.Context, sink event.Sink) {
	b := newBackoff(p.cfg.backoffMin, p.cfg.backoffMax)
	cursor, loaded := "", false
	var last time.Time // start of the last poll
	for ctx.Err() == nil {
		if !loaded {
			c, err := p.cfg.checkpoint.Load(ctx, p.name)
			if err != nil {
				if !sleep(ctx, p.failed(ctx, b, fmt.Errorf("poller: load checkpoint: %w", err))) {
					return
				}
				continue
			}
			cursor, loaded = c, true
			if cursor == "" {
				cursor = p.cfg.initial
			}
		}

		last = time.Now()
		before := p.stats.events.Load() + p.stats.duplicates.Load()
		slow, next, err := p.cycle(ctx, sink, cursor)
		cursor = next
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// Backoff is not cut short by Trigger: a trigger that comes
			// meanwhile is served by the poll after it.
			if !sleep(ctx, max(slow, p.failed(ctx, b, err))) {
				return
			}
			continue
		}
		b.Reset()
		p.status.Succeeded()
		if p.cfg.longPoll {
			gap := time.Duration(0)
			if p.stats.events.Load()+p.stats.duplicates.Load() == before {
				gap = time.Until(last.Add(p.cfg.minGap)) // nothing came: do not spin
			}
			if !sleep(ctx, max(slow, gap)) {
				return
			}
			continue
		}
		// A delay the server asked for holds against triggers too; the
		// rest of the interval does not, but the minimum gap does.
		interval := p.jittered()
		if !sleep(ctx, slow) || !p.wait(ctx, interval-slow, last) {
			return
		}
	}
}

func newBackoff(initial, max time.Duration) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = initial
	b.MaxInterval = max
	b.MaxElapsedTime = 0 // a poller that lives for months never gives up
	b.Multiplier = 2
	b.RandomizationFactor = 0.2
	b.Reset()
	return b
}

// cycle runs one poll: up to maxPages fetches back to back. It returns the
// least delay the server asked for, and the cursor reached.
func (p *Poller) cycle(ctx context.Context, sink event.Sink, cursor string) (time.Duration, string, error) {
	var slow time.Duration
	for page := 0; page < p.cfg.maxPages; page++ {
		if p.cfg.limiter != nil {
			if err := p.cfg.limiter.Wait(ctx); err != nil {
				return slow, cursor, err
			}
		}
		pctx, span := ctx, tracing.Span(nil)
		if p.cfg.tracer != nil {
			pctx, span = p.cfg.tracer.Start(ctx, "poll "+p.name, tracing.KindClient, tracing.Link{})
		}
		res, err := p.page(pctx, sink, cursor, &slow)
		if span != nil && span.IsRecording() {
			span.SetAttributes(tracing.String(tracing.AttrSystem, "intake"), tracing.String(tracing.AttrSource, p.name),
				tracing.String(tracing.AttrOperation, "receive"), tracing.Int(tracing.AttrEvents, res.events))
			if err != nil {
				span.Fail(err)
			}
		}
		if span != nil {
			span.End()
		}
		cursor = res.next
		if err != nil || res.last {
			return slow, cursor, err
		}
	}
	return slow, cursor, nil
}

// pageResult is what one page did: the cursor to go on from, how many
// events it held, and whether the cycle ends with it.
type pageResult struct {
	next   string
	events int
	last   bool
}

// page fetches and stores one page from cursor.
func (p *Poller) page(ctx context.Context, sink event.Sink, cursor string, slow *time.Duration) (pageResult, error) {
	pg, err := p.fetchSafely(ctx, cursor)
	p.stats.polls.Add(1)
	p.cfg.rec.Count(metric.Polls, p.name, "", 1)
	*slow = max(*slow, min(pg.Wait, p.cfg.maxRetryAfter))
	if pg.NotModified {
		p.stats.notModified.Add(1)
		p.cfg.rec.Count(metric.NotModified, p.name, "", 1)
	}
	if err != nil {
		if errors.Is(err, ErrCursorExpired) {
			p.cfg.log.Warn("poller: cursor expired; starting over", "source", p.name)
			return pageResult{next: p.cfg.initial, last: true}, p.save(ctx, p.cfg.initial)
		}
		return pageResult{next: cursor}, err
	}
	if len(pg.Events) == 0 {
		p.stats.empty.Add(1)
		p.cfg.rec.Count(metric.EmptyPolls, p.name, "", 1)
	}
	if err := p.deliver(ctx, sink, pg.Events); err != nil {
		return pageResult{next: cursor}, err
	}
	// Every event of the page is stored: only now does the cursor, and
	// whatever the fetch keeps in it, move on.
	res := pageResult{next: cursor, events: len(pg.Events)}
	if pg.Next != "" && pg.Next != cursor {
		if err := p.save(ctx, pg.Next); err != nil {
			// The events are stored; a restart refetches this page and
			// the store suppresses the copies.
			p.logs.Log(p.cfg.log, slog.LevelError, "checkpoint", "poller: checkpoint save failed", "source", p.name, "err", err)
		}
		res.next = pg.Next
	}
	more := pg.More || (p.cfg.greedy > 0 && len(pg.Events) >= p.cfg.greedy)
	res.last = !more || *slow > 0
	return res, nil
}

// fetchSafely calls the fetcher, turning a panic into an error.
func (p *Poller) fetchSafely(ctx context.Context, cursor string) (pg Page, err error) {
	defer func() {
		if r := recover(); r != nil {
			pg, err = Page{}, fmt.Errorf("poller: fetch panicked: %v", r)
		}
	}()
	return p.fetch.Fetch(ctx, cursor)
}

func (p *Poller) save(ctx context.Context, cursor string) error {
	return p.cfg.checkpoint.Save(ctx, p.name, cursor)
}

// deliver stores a page. A sink that stores many at once gets the page in
// one call; what a full queue refused is put again after a wait that grows
// from 1 ms to the stream's suggested delay (at most 1 second: the
// suggestion is sized for remote senders, and the poller is local and can
// look again sooner), starting over whenever the queue took something —
// all that is left at once, not one event after another, so that a page
// meeting a full queue waits once per refusal, not once per event. A
// duplicate counts as delivered; an event the stream refuses as invalid
// is skipped. Any other error stops the page, so that the cursor stays
// before what was not stored.
func (p *Poller) deliver(ctx context.Context, sink event.Sink, events []event.Event) error {
	now := time.Now()
	var created tracing.Link // the poll's span: the events' creation context
	if p.cfg.tracer != nil {
		created = p.cfg.tracer.Context(ctx)
	}
	pending := make([]event.Event, len(events))
	for i, e := range events {
		if e.ID == "" {
			e.ID = event.ContentID(e)
		}
		if e.Source == "" || !p.cfg.keepSource {
			e.Source = p.name
		}
		e.Via = event.Poll
		if e.Received.IsZero() {
			e.Received = now
		}
		if created.Traceparent != "" && e.Meta[tracing.MetaTraceparent] == "" { // a relayed event keeps its own
			e.Meta = maps.Clone(e.Meta) // the fetch's map is not ours to write
			tracing.ToMeta(&e.Meta, created)
		}
		pending[i] = e
	}
	bs, batch := sink.(event.BatchSink)
	var full *backoff.ExponentialBackOff
	for len(pending) > 0 {
		var errs []error
		if batch && len(pending) > 1 {
			errs = bs.PutMany(ctx, pending)
		} else {
			// One at a time, up to the first refusal for a full queue:
			// what follows it would be refused too.
			errs = make([]error, len(pending))
			for i, e := range pending {
				errs[i] = sink.Put(ctx, e)
				if errors.Is(errs[i], event.ErrQueueFull) {
					for j := i + 1; j < len(pending); j++ {
						errs[j] = errs[i]
					}
					break
				}
			}
		}
		var again []event.Event
		var fullErr error
		for i, e := range pending {
			switch err := errs[i]; {
			case err == nil:
				p.stats.events.Add(1)
			case errors.Is(err, event.ErrDuplicate), errors.Is(err, event.ErrPending):
				p.stats.duplicates.Add(1)
			case errors.Is(err, event.ErrInvalid):
				// Never storable: retrying would stall the cursor on this
				// page forever. Skip it, loudly.
				p.stats.invalid.Add(1)
				p.logs.Log(p.cfg.log, slog.LevelError, "invalid", "poller: event refused as invalid; skipped", "source", p.name, "id", e.ID, "err", err)
			case errors.Is(err, event.ErrQueueFull):
				again = append(again, e)
				fullErr = err
			default:
				return fmt.Errorf("poller: put event %s: %w", e.ID, err)
			}
		}
		if len(again) == 0 {
			return nil
		}
		if full == nil {
			full = newBackoff(time.Millisecond, time.Second)
		} else if len(again) < len(pending) {
			full.Reset() // the queue took something: look again soon
		}
		limit := time.Second
		if d, ok := event.RetryDelay(fullErr); ok && d > 0 {
			limit = min(d, limit)
		}
		if !sleepFor(ctx, min(full.NextBackOff(), limit)) {
			return ctx.Err()
		}
		pending = again
	}
	return nil
}

// failed records a failed poll and returns the delay before the next: the
// backoff, or the server's delay if longer (capped).
func (p *Poller) failed(ctx context.Context, b *backoff.ExponentialBackOff, err error) time.Duration {
	d := b.NextBackOff()
	if ra, ok := event.RetryDelay(err); ok {
		d = max(d, min(ra, p.cfg.maxRetryAfter))
	}
	p.stats.errors.Add(1)
	p.status.Failed(err)
	p.cfg.rec.Count(metric.PollErrors, p.name, "", 1)
	p.cfg.rec.Observe(metric.Backoff, p.name, d)
	if ctx.Err() == nil {
		p.logs.Log(p.cfg.log, slog.LevelWarn, "poll", "poller: poll failed; backing off", "source", p.name, "err", err, "delay", d)
	}
	return d
}

// wait waits d, or less if triggered, but never ends before minGap after
// last, the start of the last poll. It returns false when ctx is done.
func (p *Poller) wait(ctx context.Context, d time.Duration, last time.Time) bool {
	if d <= 0 {
		select {
		case <-p.trigger: // served by the poll that starts now
		default:
		}
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	select {
	case <-ctx.Done():
		t.Stop()
		return false
	case <-t.C:
		// Triggers that came during the poll are served by this poll.
		select {
		case <-p.trigger:
		default:
		}
		return true
	case <-p.trigger:
		t.Stop()
	}
	// Triggered: respect the gap, then the rest of the interval no longer
	// matters; triggers that come meanwhile are served by the same poll.
	ok := sleep(ctx, min(time.Until(last.Add(p.cfg.minGap)), d))
	select {
	case <-p.trigger:
	default:
	}
	return ok
}

func (p *Poller) jittered() time.Duration {
	d := p.cfg.interval
	if p.cfg.jitter > 0 {
		d = time.Duration(float64(d) * (1 + p.cfg.jitter*(2*rand.Float64()-1)))
	}
	return max(d, time.Millisecond)
}

// sleepFor is sleep, replaced in tests that record the waits.
var sleepFor = sleep

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
