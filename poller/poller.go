// Package poller asks an API for new events on a schedule, politely, and
// puts them into a sink (an intake stream) in order, advancing its cursor
// only once every event of a page is stored.
//
// A [Poller] runs a [FetchFunc] every interval (with jitter), backs off
// exponentially on errors and never gives up, honours server-given delays
// (capped), shares a [rate.Limiter] with other pollers of the same API,
// follows pagination and drains a backlog at once, and polls at once when
// [Poller.Trigger] is called: the hybrid pattern triggers a poll from a
// webhook's arrival. [HTTP] builds a FetchFunc for JSON list APIs with
// conditional requests, Retry-After and rate-limit headers, and Link
// pagination.
//
// A poller is an [event.Source]: add it to a stream, or call Run with any
// [event.Sink].
package poller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/time/rate"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/metric"
)

// FetchFunc fetches the events after cursor, in order, and the cursor to
// fetch from next. An empty next keeps the current cursor. It is called
// with a context that ends when the poll must stop.
//
// An error stops the poll and backs off; wrap it with [event.RetryAfter]
// to ask for at least that delay, or return [ErrCursorExpired] to restart
// from the initial cursor.
type FetchFunc func(ctx context.Context, cursor string) (events []event.Event, next string, err error)

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
	fetch FetchFunc
	cfg   config

	trigger chan struct{}
	running atomic.Bool
	stats   struct {
		polls, empty, notModified, events, duplicates, invalid, errors, requests, bytes atomic.Int64
	}
}

// Option configures a [Poller].
type Option func(*config)

type config struct {
	interval      time.Duration
	jitter        float64
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
	log           *slog.Logger
	rec           metric.Recorder
}

// Every sets the interval between polls. Defaults to 30 seconds.
func Every(d time.Duration) Option { return func(c *config) { c.interval = d } }

// WithJitter spreads each interval uniformly by ±f of itself so that a
// fleet of pollers does not synchronise. Defaults to 0.1.
func WithJitter(f float64) Option { return func(c *config) { c.jitter = f } }

// WithBackoff sets the exponential backoff after failed polls: initial
// after the first failure, doubling up to max, each ±20%, and reset by a
// success. It never gives up. Defaults to 1 second and 5 minutes.
func WithBackoff(initial, max time.Duration) Option {
	return func(c *config) { c.backoffMin, c.backoffMax = initial, max }
}

// WithMaxRetryAfter caps a server-given delay (Retry-After, rate-limit
// reset, X-Poll-Interval) so that a broken or hostile header cannot park
// the poller. Defaults to 15 minutes.
func WithMaxRetryAfter(d time.Duration) Option { return func(c *config) { c.maxRetryAfter = d } }

// WithLimiter makes every fetch wait for l. Share one limiter among the
// pollers of one API key. Defaults to no limit.
func WithLimiter(l *rate.Limiter) Option { return func(c *config) { c.limiter = l } }

// Greedy makes the poller fetch again at once, instead of waiting an
// interval, after a page of at least pageSize events, so that a backlog
// drains fast (within the page cap and the limiter). Defaults to off.
func Greedy(pageSize int) Option { return func(c *config) { c.greedy = pageSize } }

// WithMaxPages caps the pages fetched back to back in one poll, by
// pagination or greedy mode. Defaults to 10.
func WithMaxPages(n int) Option { return func(c *config) { c.maxPages = n } }

// WithCheckpoint sets where the cursor is saved. Defaults to a
// [MemoryCheckpoint] of the poller's own.
func WithCheckpoint(cp Checkpoint) Option { return func(c *config) { c.checkpoint = cp } }

// WithInitialCursor sets the cursor used when no checkpoint exists and
// after [ErrCursorExpired]. Defaults to "".
func WithInitialCursor(cursor string) Option { return func(c *config) { c.initial = cursor } }

// WithLease makes the poller poll only while it holds l for its name,
// renewing it every ttl/3. Defaults to always leading.
func WithLease(l Lease, ttl time.Duration) Option {
	return func(c *config) { c.lease, c.leaseTTL = l, ttl }
}

// WithLogger sets the logger. Defaults to [slog.Default].
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithMetrics sets the metrics recorder. Defaults to [metric.Discard].
func WithMetrics(r metric.Recorder) Option { return func(c *config) { c.rec = r } }

// New returns a poller named name (the Source of its events: give a
// provider's poller and webhook handler the same name so that the stream
// dedupes across both) that calls fetch.
func New(name string, fetch FetchFunc, opts ...Option) *Poller {
	cfg := config{
		interval:      30 * time.Second,
		jitter:        0.1,
		backoffMin:    time.Second,
		backoffMax:    5 * time.Minute,
		maxRetryAfter: 15 * time.Minute,
		maxPages:      10,
		lease:         alwaysLeader{},
		leaseTTL:      30 * time.Second,
		log:           slog.Default(),
		rec:           metric.Discard{},
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.checkpoint == nil {
		cfg.checkpoint = &MemoryCheckpoint{}
	}
	cfg.maxPages = max(cfg.maxPages, 1)
	return &Poller{name: name, fetch: fetch, cfg: cfg, trigger: make(chan struct{}, 1)}
}

// Name implements [event.Source].
func (p *Poller) Name() string { return p.name }

// Trigger asks for a poll now. Triggers that arrive while a poll runs
// coalesce into one more poll after it. It never blocks.
func (p *Poller) Trigger() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// Stats are a poller's counters since it was created.
type Stats struct {
	Polls       int64 // fetch calls
	Requests    int64 // HTTP requests made by an [HTTP] fetch
	Bytes       int64 // response bytes read by an [HTTP] fetch
	Empty       int64 // fetches that returned no event
	NotModified int64 // HTTP 304 answers
	Events      int64 // events stored
	Duplicates  int64 // events the stream already had
	Invalid     int64 // events the stream refused as invalid, skipped (see [event.ErrInvalid])
	Errors      int64 // failed fetches or puts
}

// Stats returns the poller's counters.
func (p *Poller) Stats() Stats {
	s := &p.stats
	return Stats{
		Polls: s.polls.Load(), Requests: s.requests.Load(), Bytes: s.bytes.Load(), Empty: s.empty.Load(),
		NotModified: s.notModified.Load(), Events: s.events.Load(), Duplicates: s.duplicates.Load(),
		Invalid: s.invalid.Load(), Errors: s.errors.Load(),
	}
}

// ErrAlreadyRunning is returned by Run when the poller is running already.
var ErrAlreadyRunning = errors.New("poller: already running")

// Run polls until ctx is done, then returns nil. It implements
// [event.Source]. Errors never end it: fetch and store failures back off
// and retry, and the cursor never moves past an event that is not stored.
func (p *Poller) Run(ctx context.Context, sink event.Sink) error {
	if !p.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer p.running.Store(false)
	for ctx.Err() == nil {
		if !p.lead(ctx) {
			break
		}
		leadCtx, cancel := context.WithCancel(ctx)
		renewed := make(chan struct{})
		go func() {
			defer close(renewed)
			p.renew(leadCtx, cancel)
		}()
		p.poll(leadCtx, sink)
		cancel()
		<-renewed
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		if err := p.cfg.lease.Release(rctx, p.name); err != nil {
			p.cfg.log.Warn("poller: lease release failed", "source", p.name, "err", err)
		}
		rcancel()
	}
	return nil
}

// lead blocks until the poller holds the lease, or ctx is done.
func (p *Poller) lead(ctx context.Context) bool {
	for {
		ok, err := p.cfg.lease.Acquire(ctx, p.name, p.cfg.leaseTTL)
		if err != nil {
			p.cfg.log.Warn("poller: lease acquire failed", "source", p.name, "err", err)
		}
		if ok {
			return true
		}
		if !sleep(ctx, p.cfg.leaseTTL/3) {
			return false
		}
	}
}

// renew keeps the lease until ctx is done; when it is lost, it cancels the
// polling.
func (p *Poller) renew(ctx context.Context, lost context.CancelFunc) {
	for sleep(ctx, p.cfg.leaseTTL/3) {
		ok, err := p.cfg.lease.Renew(ctx, p.name, p.cfg.leaseTTL)
		if ctx.Err() != nil {
			return
		}
		if err != nil || !ok {
			p.cfg.log.Warn("poller: lease lost", "source", p.name, "err", err)
			lost()
			return
		}
	}
}

// poll is the polling loop of a leader. It returns when ctx is done.
func (p *Poller) poll(ctx context.Context, sink event.Sink) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = p.cfg.backoffMin
	b.MaxInterval = p.cfg.backoffMax
	b.MaxElapsedTime = 0 // a poller that lives for months never gives up
	b.Multiplier = 2
	b.RandomizationFactor = 0.2
	b.Reset()

	cursor, loaded := "", false
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
		// A delay the server asked for holds against triggers too; the
		// rest of the interval does not.
		interval := p.jittered()
		if !sleep(ctx, slow) || !p.wait(ctx, interval-slow) {
			return
		}
	}
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
		h := &hints{}
		events, next, err := p.fetch(withHints(ctx, h), cursor)
		p.stats.polls.Add(1)
		p.stats.requests.Add(h.requests)
		p.stats.bytes.Add(h.bytes)
		p.cfg.rec.Count(metric.Polls, p.name, "", 1)
		slow = max(slow, min(h.slowDown, p.cfg.maxRetryAfter))
		if h.notModified {
			p.stats.notModified.Add(1)
			p.cfg.rec.Count(metric.NotModified, p.name, "", 1)
		}
		if err != nil {
			if errors.Is(err, ErrCursorExpired) {
				p.cfg.log.Warn("poller: cursor expired; starting over", "source", p.name)
				return slow, p.cfg.initial, p.save(ctx, p.cfg.initial)
			}
			return slow, cursor, err
		}
		if len(events) == 0 {
			p.stats.empty.Add(1)
			p.cfg.rec.Count(metric.EmptyPolls, p.name, "", 1)
		}
		if err := p.deliver(ctx, sink, events); err != nil {
			return slow, cursor, err
		}
		if next != "" && next != cursor {
			if err := p.save(ctx, next); err != nil {
				// The events are stored; a restart refetches this page and
				// the store suppresses the copies.
				p.cfg.log.Error("poller: checkpoint save failed", "source", p.name, "err", err)
			}
			cursor = next
		}
		more := h.more || (p.cfg.greedy > 0 && len(events) >= p.cfg.greedy)
		if !more || slow > 0 {
			break
		}
	}
	return slow, cursor, nil
}

func (p *Poller) save(ctx context.Context, cursor string) error {
	return p.cfg.checkpoint.Save(ctx, p.name, cursor)
}

// deliver puts events in order. A full queue is waited out, the same event
// put again after a short wait that doubles up to the stream's suggested
// delay (the suggestion is sized for remote senders; the poller is local
// and can look again sooner); a duplicate counts as delivered. Any other
// error stops the page so that the cursor stays before the event that was
// not stored.
func (p *Poller) deliver(ctx context.Context, sink event.Sink, events []event.Event) error {
	now := time.Now()
	for i := range events {
		e := events[i]
		e.Source, e.Via = p.name, event.Poll
		if e.Received.IsZero() {
			e.Received = now
		}
		if e.ID == "" {
			sum := sha256.Sum256(e.Payload)
			e.ID = "sha256:" + hex.EncodeToString(sum[:16])
		}
		wait := time.Millisecond
		for {
			err := sink.Put(ctx, e)
			switch {
			case err == nil:
				p.stats.events.Add(1)
			case errors.Is(err, event.ErrDuplicate), errors.Is(err, event.ErrPending):
				p.stats.duplicates.Add(1)
			case errors.Is(err, event.ErrInvalid):
				// Never storable: retrying would stall the cursor on this
				// page forever. Skip it, loudly.
				p.stats.invalid.Add(1)
				p.cfg.log.Error("poller: event refused as invalid; skipped", "source", p.name, "id", e.ID, "err", err)
			case errors.Is(err, event.ErrQueueFull):
				limit := time.Second
				if d, ok := event.RetryDelay(err); ok && d > 0 {
					limit = min(d, limit)
				}
				if !sleep(ctx, min(wait, limit)) {
					return ctx.Err()
				}
				wait *= 2
				continue
			default:
				return fmt.Errorf("poller: put event %s: %w", e.ID, err)
			}
			break
		}
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
	p.cfg.rec.Count(metric.PollErrors, p.name, "", 1)
	p.cfg.rec.Observe(metric.Backoff, p.name, d)
	if ctx.Err() == nil {
		p.cfg.log.Warn("poller: poll failed; backing off", "source", p.name, "err", err, "delay", d)
	}
	return d
}

// wait waits d, or less if triggered. It returns false when ctx is done.
func (p *Poller) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		// Triggers that came during the poll are served by this poll.
		select {
		case <-p.trigger:
		default:
		}
		return true
	case <-p.trigger:
		return true
	}
}

func (p *Poller) jittered() time.Duration {
	d := p.cfg.interval
	if p.cfg.jitter > 0 {
		d = time.Duration(float64(d) * (1 + p.cfg.jitter*(2*rand.Float64()-1)))
	}
	return max(d, time.Millisecond)
}

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

// hints carry what an HTTP fetch learned to the poller that called it.
type hints struct {
	slowDown    time.Duration // wait at least this long before the next poll
	more        bool          // another page is ready now
	notModified bool
	requests    int64
	bytes       int64
}

type hintsKey struct{}

func withHints(ctx context.Context, h *hints) context.Context {
	return context.WithValue(ctx, hintsKey{}, h)
}

func hintsFrom(ctx context.Context) *hints {
	if h, ok := ctx.Value(hintsKey{}).(*hints); ok {
		return h
	}
	return &hints{}
}

// SlowDown asks the poller that called the fetch running with ctx to wait
// at least d before its next poll (capped by [WithMaxRetryAfter]). A custom
// FetchFunc calls it when the API asks for fewer requests.
func SlowDown(ctx context.Context, d time.Duration) {
	h := hintsFrom(ctx)
	h.slowDown = max(h.slowDown, d)
}

// MorePages tells the poller that called the fetch running with ctx that
// another page is ready, so that it fetches again at once (within
// [WithMaxPages]).
func MorePages(ctx context.Context) { hintsFrom(ctx).more = true }
