// Package fleet polls many connections — one per customer account of an
// API — from a bounded pool of workers, on one replica or many. A
// connection is a record in a [Store] (its source, interval, cursor,
// credential reference, state and error streak), not a goroutine: an
// idle connection costs no goroutine and no statement until it is due.
//
// A [Fleet] is an [event.Source]: add it to a stream. Its replicas take
// due connections from the store in batches ([Store.Claim]), poll each
// with the poller's own logic ([poller.Poller.Once]: pages, the cursor
// moved only once a page's events are stored, Retry-After, the limiter)
// and write the result — cursor, next due time, error streak — in one
// fenced write ([Store.Release]): a replica that lost its claim (the
// connection was paused, resynced, removed, or taken over after its
// lease expired) writes nothing. Due times are spread with jitter, so
// that connections added at once are not polled at once.
//
// A credential the API refuses (HTTP 401 or 403, or a poll that returns
// [ErrUnauthorized]) pauses its connection with the reason, and the
// [OnPause] hook is called once, so that the app can ask its user to
// reconnect; [Fleet.Update] with a new credential, or [Fleet.Resume],
// starts it again. A connection a person paused stays paused until a
// person resumes it. Other errors back off per connection.
//
// The stores: [Memory] (one process), backend/postgres (replicas, FOR
// UPDATE SKIP LOCKED) and backend/sqlite (one node).
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/logsample"
	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/poller"
)

// PollFunc fetches the page after cursor for one connection: resolve
// c.Credential, ask the API. Errors are as for a [poller.Fetcher]; an
// error wrapping [ErrUnauthorized] or an HTTP 401 or 403
// ([poller.StatusError]) pauses the connection.
//
// An event's key is its source and ID, so IDs must be unique across the
// source's connections, as providers' ids are (Stripe's evt_…, GitHub's
// delivery guids). For an API whose ids repeat from one account to the
// next, put the connection in the ID (c.ID + "/" + id).
type PollFunc func(ctx context.Context, c Connection, cursor string) (poller.Page, error)

// MetaConnection is the [event.Event] Meta key that holds the ID of the
// connection an event was polled for.
const MetaConnection = "intake.connection"

// Fleet polls the connections of a [Store]. Create it with [New], give
// it its sources with Source, and run it (or add it to a stream).
type Fleet struct {
	name    string
	store   Store
	cfg     config
	sources sync.Map // source name → *source

	running  atomic.Bool
	logs     logsample.Sampler
	status   event.StatusRecorder
	stats    struct{ polls, late, events, duplicates, errors, paused, lost atomic.Int64 }
	heldMu   sync.Mutex
	held     map[string]*polling // ID → poll in flight
	finished chan struct{}       // a worker finished
}

type source struct {
	poll PollFunc
	opts []poller.Option
}

type polling struct {
	claim  Claim
	cancel context.CancelFunc
}

type config struct {
	holder        string
	workers       int
	lease         time.Duration
	scan          time.Duration
	interval      time.Duration
	jitter        float64
	backoffMin    time.Duration
	backoffMax    time.Duration
	maxRetryAfter time.Duration
	onPause       func(context.Context, Connection)
	log           *slog.Logger
	rec           metric.Recorder
	recSet        bool
}

// Option configures a [Fleet]. A zero value means the option's default;
// a negative one makes it panic.
type Option func(*config)

func positive(option string, d, def time.Duration) time.Duration {
	switch {
	case d < 0:
		panic(fmt.Sprintf("fleet: %s(%v): must not be negative (0 means the default, %v)", option, d, def))
	case d == 0:
		return def
	}
	return d
}

// WithWorkers bounds the polls in flight on this replica. Defaults to 64.
func WithWorkers(n int) Option {
	if n < 0 {
		panic(fmt.Sprintf("fleet: WithWorkers(%d): must not be negative", n))
	}
	return func(c *config) {
		if n > 0 {
			c.workers = n
		}
	}
}

// WithLease sets how long a claim holds without renewal: a crashed
// replica's connections are polled by others at most this long after
// they were due. Claims are renewed every third of it while their polls
// run; a poll whose claim could not be renewed is stopped. Defaults to
// 30 seconds.
func WithLease(d time.Duration) Option {
	d = positive("WithLease", d, 30*time.Second)
	return func(c *config) { c.lease = d }
}

// WithScan sets the longest wait between two claims when nothing is
// due: a replica takes what fell due meanwhile in one batch, so a poll
// starts up to this late, and a connection added, resumed or resynced
// elsewhere is noticed this soon. Defaults to 1 second.
func WithScan(d time.Duration) Option {
	d = positive("WithScan", d, time.Second)
	return func(c *config) { c.scan = d }
}

// WithInterval sets the interval of connections that have none.
// Defaults to 5 minutes.
func WithInterval(d time.Duration) Option {
	d = positive("WithInterval", d, 5*time.Minute)
	return func(c *config) { c.interval = d }
}

// WithJitter spreads each interval by ±f of itself. Defaults to 0.1; it
// panics outside [0, 1).
func WithJitter(f float64) Option {
	if f < 0 || f >= 1 {
		panic(fmt.Sprintf("fleet: WithJitter(%v): must be in [0, 1)", f))
	}
	return func(c *config) { c.jitter = f }
}

// WithBackoff sets the backoff of a connection whose polls fail:
// initial after the first failure, doubling per failure in a row up to
// max, ±20%. Defaults to 1 second and 5 minutes.
func WithBackoff(initial, max time.Duration) Option {
	initial = positive("WithBackoff", initial, time.Second)
	max = positive("WithBackoff", max, 5*time.Minute)
	if initial > max {
		panic(fmt.Sprintf("fleet: WithBackoff(%v, %v): initial exceeds max", initial, max))
	}
	return func(c *config) { c.backoffMin, c.backoffMax = initial, max }
}

// WithMaxRetryAfter caps the delay a server may ask for (Retry-After, a
// spent rate limit). Defaults to 15 minutes.
func WithMaxRetryAfter(d time.Duration) Option {
	d = positive("WithMaxRetryAfter", d, 15*time.Minute)
	return func(c *config) { c.maxRetryAfter = d }
}

// WithHolder names this replica in its claims. Defaults to the host
// name, the process ID and a random number.
func WithHolder(name string) Option { return func(c *config) { c.holder = name } }

// OnPause sets a hook called once when the fleet pauses a connection
// whose credential was refused (by the replica whose poll saw it): tell
// the account's user to reconnect. It runs on the poll's goroutine.
func OnPause(fn func(ctx context.Context, c Connection)) Option {
	return func(c *config) { c.onPause = fn }
}

// WithLogger sets the logger. Defaults to slog.Default().
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithMetrics sets the recorder of the fleet's polls. Defaults to the
// stream's.
func WithMetrics(r metric.Recorder) Option { return func(c *config) { c.rec, c.recSet = r, true } }

// New returns a fleet named name (its name as a stream's source) that
// polls the connections of store. It panics if store is nil.
func New(name string, store Store, opts ...Option) *Fleet {
	if store == nil {
		panic("fleet: New with a nil Store")
	}
	host, _ := os.Hostname()
	cfg := config{
		holder:        host + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(rand.Uint64()>>32, 36),
		workers:       64,
		lease:         30 * time.Second,
		scan:          time.Second,
		interval:      5 * time.Minute,
		jitter:        0.1,
		backoffMin:    time.Second,
		backoffMax:    5 * time.Minute,
		maxRetryAfter: 15 * time.Minute,
		log:           slog.Default(),
		rec:           metric.Discard{},
	}
	for _, o := range opts {
		o(&cfg)
	}
	return &Fleet{name: name, store: store, cfg: cfg, held: map[string]*polling{}, finished: make(chan struct{}, 1)}
}

// Source sets how the connections of a source are polled: poll fetches
// a page, opts are the poller's (the page cap, Greedy, a limiter shared
// by the source's connections, the initial cursor, Retry-After's cap).
// The poller's interval, backoff, lease and checkpoint options are the
// fleet's business and have no effect here. Call it before Run; a
// connection whose source is unknown backs off and says so.
func (f *Fleet) Source(name string, poll PollFunc, opts ...poller.Option) {
	if poll == nil {
		panic("fleet: Source " + name + " with a nil PollFunc")
	}
	f.sources.Store(name, &source{poll: poll, opts: opts})
}

// Name implements [event.Source].
func (f *Fleet) Name() string { return f.name }

// Via returns [event.Poll].
func (f *Fleet) Via() event.Via { return event.Poll }

// Status implements [event.Reporter]: the last poll that succeeded and
// the last that failed, of any connection.
func (f *Fleet) Status() event.Status { return f.status.Status() }

// Stats are a replica's counters since its fleet was created.
type Stats struct {
	Polls      int64 // polls made
	Late       int64 // polls that started later than a tenth of their interval after they were due
	Events     int64 // events stored
	Duplicates int64 // events the stream already had (a lookback's overlap among them)
	Errors     int64 // failed polls
	Paused     int64 // connections this replica paused (credential refused)
	Lost       int64 // claims lost mid-poll (paused, resynced, removed, or taken over)
}

// Stats returns the replica's counters.
func (f *Fleet) Stats() Stats {
	s := &f.stats
	return Stats{Polls: s.polls.Load(), Late: s.late.Load(), Events: s.events.Load(), Duplicates: s.duplicates.Load(),
		Errors: s.errors.Load(), Paused: s.paused.Load(), Lost: s.lost.Load()}
}

// Store returns the fleet's store.
func (f *Fleet) Store() Store { return f.store }

// ErrAlreadyRunning is returned by Run when the fleet is running already.
var ErrAlreadyRunning = errors.New("fleet: already running")

// Run polls due connections until ctx is done, then waits for the polls
// in flight to stop, releases their claims (due at once, for whichever
// replica is next), and returns nil. Store errors back off and retry.
func (f *Fleet) Run(ctx context.Context, sink event.Sink) error {
	if !f.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer f.running.Store(false)
	if m, ok := sink.(interface{ Metrics() metric.Recorder }); ok && !f.cfg.recSet {
		f.cfg.rec = m.Metrics()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	hbCtx, stopHB := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		f.heartbeat(hbCtx)
	}()
	defer stopHB()

	var busy atomic.Int64
	fail := time.Duration(0)
	// A claim is one statement for a batch: with most workers busy, wait
	// for an eighth of them (or a scan) rather than claim one at a time.
	least := max(1, f.cfg.workers/8)
	for ctx.Err() == nil {
		free := f.cfg.workers - int(busy.Load())
		if free < least {
			t := time.NewTimer(f.cfg.scan)
			for free < least && ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-f.finished:
					free = f.cfg.workers - int(busy.Load())
					continue
				case <-t.C:
				}
				break
			}
			t.Stop()
			if free = f.cfg.workers - int(busy.Load()); free <= 0 {
				continue
			}
		}
		claims, next, err := f.store.Claim(ctx, f.cfg.holder, free, f.cfg.lease)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			fail = min(max(2*fail, 100*time.Millisecond), f.cfg.scan*5)
			f.logs.Log(f.cfg.log, slog.LevelWarn, "claim", "fleet: claim failed; retrying", "fleet", f.name, "err", err, "delay", fail)
			sleep(ctx, fail)
			continue
		}
		fail = 0
		for _, c := range claims {
			pctx, cancel := context.WithCancel(ctx)
			f.heldMu.Lock()
			f.held[c.ID] = &polling{claim: c, cancel: cancel}
			f.heldMu.Unlock()
			busy.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				f.pollOne(pctx, ctx, sink, c)
				cancel()
				f.heldMu.Lock()
				if p, ok := f.held[c.ID]; ok && p.claim.Token == c.Token { // not a later claim of the same connection
					delete(f.held, c.ID)
				}
				f.heldMu.Unlock()
				busy.Add(-1)
				select {
				case f.finished <- struct{}{}:
				default:
				}
			}()
		}
		if len(claims) == free {
			continue // more may be due: take them as workers free up
		}
		// ±20% on the scan, so that replicas started together drift
		// apart: in step, the first to claim would take every due
		// connection of each scan.
		wait := time.Duration(float64(f.cfg.scan) * (0.8 + 0.4*rand.Float64()))
		if next >= 0 {
			wait = min(wait, next)
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
	return nil
}

// heartbeat renews the claims of the polls in flight every third of the
// lease, and stops those it no longer holds; when renewal fails for
// longer than half the lease, it stops them all (another replica may
// take them once the lease runs out).
func (f *Fleet) heartbeat(ctx context.Context) {
	lastOK := time.Now()
	for sleep(ctx, f.cfg.lease/3) {
		f.heldMu.Lock()
		claims := make([]Claim, 0, len(f.held))
		for _, p := range f.held {
			claims = append(claims, p.claim)
		}
		f.heldMu.Unlock()
		if len(claims) == 0 {
			lastOK = time.Now()
			continue
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(ctx, f.cfg.lease/4)
		ids, err := f.store.Extend(rctx, f.cfg.holder, claims, f.cfg.lease)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			f.logs.Log(f.cfg.log, slog.LevelWarn, "extend", "fleet: claim renewal failed", "fleet", f.name, "err", err)
			if time.Since(lastOK) > f.cfg.lease/2 {
				f.stopAll(claims)
			}
			continue
		}
		lastOK = sent
		still := make(map[string]bool, len(ids))
		for _, id := range ids {
			still[id] = true
		}
		var lost []Claim
		for _, c := range claims {
			if !still[c.ID] {
				lost = append(lost, c)
			}
		}
		f.stopAll(lost)
	}
}

// stopAll cancels the polls of claims that are still in flight.
func (f *Fleet) stopAll(claims []Claim) {
	f.heldMu.Lock()
	defer f.heldMu.Unlock()
	for _, c := range claims {
		if p, ok := f.held[c.ID]; ok && p.claim.Token == c.Token {
			p.cancel()
		}
	}
}

// pollOne polls one claimed connection and releases it. pctx ends when
// the claim is lost or the fleet stops; runCtx only when the fleet
// stops.
func (f *Fleet) pollOne(pctx, runCtx context.Context, sink event.Sink, c Claim) {
	interval := c.Interval
	if interval <= 0 {
		interval = f.cfg.interval
	}
	if late := time.Since(c.NextDue); late > interval/10 {
		f.stats.late.Add(1)
	}
	res := f.poll(pctx, sink, c, interval)
	if res.Abandoned {
		res.Next = 0 // due at once, for whichever replica claims it next
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(runCtx), f.cfg.lease/4)
	ok, err := f.store.Release(rctx, c, res)
	cancel()
	switch {
	case err != nil:
		f.logs.Log(f.cfg.log, slog.LevelWarn, "release", "fleet: release failed; the claim expires", "fleet", f.name, "connection", c.ID, "err", err)
	case !ok:
		f.stats.lost.Add(1)
		f.cfg.log.Info("fleet: claim lost; the poll's result is not written", "fleet", f.name, "connection", c.ID)
	case res.Pause != "":
		f.stats.paused.Add(1)
		f.cfg.log.Warn("fleet: credential refused; connection paused", "fleet", f.name, "connection", c.ID, "reason", res.Pause)
		f.cfg.rec.Count(metric.FleetPaused, c.Source, "", 1)
		if f.cfg.onPause != nil {
			conn := c.Connection
			conn.Paused, conn.Reason = PausedBySystem, res.Pause
			f.cfg.onPause(context.WithoutCancel(runCtx), conn)
		}
	}
}

// poll runs one poll of c and says what to write.
func (f *Fleet) poll(ctx context.Context, sink event.Sink, c Claim, interval time.Duration) Result {
	v, ok := f.sources.Load(c.Source)
	if !ok {
		r := f.failed(c, fmt.Errorf("fleet: connection %q: no source %q in this fleet", c.ID, c.Source))
		r.Cursor = c.Cursor
		return r
	}
	src := v.(*source)
	conn := c.Connection
	fetch := poller.FetchFunc(func(ctx context.Context, cursor string) (poller.Page, error) {
		pg, err := src.poll(ctx, conn, cursor)
		for i := range pg.Events {
			e := &pg.Events[i]
			meta := make(map[string]string, len(e.Meta)+1)
			for k, v := range e.Meta {
				meta[k] = v
			}
			meta[MetaConnection] = conn.ID
			e.Meta = meta
		}
		return pg, err
	})
	opts := append(append([]poller.Option{}, src.opts...),
		poller.WithMaxRetryAfter(f.cfg.maxRetryAfter), poller.WithLogger(f.cfg.log), poller.WithMetrics(f.cfg.rec))
	p := poller.New(c.Source, fetch, opts...)
	out, err := p.Once(ctx, sink, c.Cursor)
	f.stats.events.Add(out.Events)
	f.stats.duplicates.Add(out.Duplicates)
	res := Result{Cursor: out.Cursor, Events: out.Events}
	if ctx.Err() == nil {
		f.stats.polls.Add(1)
	}
	if ctx.Err() != nil {
		// Stopping, or the claim lost: what the poll stored is written
		// (if the claim still holds), and no poll is counted.
		res.Abandoned = true
		return res
	}
	if err != nil {
		r := f.failed(c, err)
		r.Cursor, r.Events = res.Cursor, res.Events
		r.Next = max(r.Next, out.Wait)
		return r
	}
	f.status.Succeeded()
	res.Next = max(f.jittered(interval), out.Wait)
	return res
}

// failed is the result of a failed poll: a pause when the credential was
// refused, otherwise the next try after the connection's backoff (or the
// server's delay, capped).
func (f *Fleet) failed(c Claim, err error) Result {
	f.stats.errors.Add(1)
	f.status.Failed(err)
	res := Result{Failed: true, Error: err.Error()}
	if refused(err) {
		res.Pause = err.Error()
		return res
	}
	d := f.cfg.backoffMin
	for i := 0; i < c.Errors && d < f.cfg.backoffMax; i++ {
		d *= 2
	}
	d = min(d, f.cfg.backoffMax)
	d = time.Duration(float64(d) * (1 + 0.2*(2*rand.Float64()-1)))
	if ra, ok := event.RetryDelay(err); ok {
		d = max(d, min(ra, f.cfg.maxRetryAfter))
	}
	res.Next = d
	f.logs.Log(f.cfg.log, slog.LevelWarn, "poll", "fleet: poll failed; backing off", "fleet", f.name, "connection", c.ID, "err", err, "delay", d)
	return res
}

// refused reports an error that says the credential is gone.
func refused(err error) bool {
	if errors.Is(err, ErrUnauthorized) {
		return true
	}
	var se *poller.StatusError
	return errors.As(err, &se) && (se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden)
}

func (f *Fleet) jittered(d time.Duration) time.Duration {
	if f.cfg.jitter > 0 {
		d = time.Duration(float64(d) * (1 + f.cfg.jitter*(2*rand.Float64()-1)))
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

// Lookback returns a poll that re-reads the last d behind a time cursor
// (RFC 3339) on every poll, as [poller.Lookback] does for one poller, so
// that records an API lists late with an older timestamp are not
// missed; the stream's idempotency store absorbs the overlap
// ([Stats].Duplicates counts it).
func Lookback(d time.Duration, poll PollFunc) PollFunc {
	if d < 0 {
		panic(fmt.Sprintf("fleet: Lookback(%v): must not be negative", d))
	}
	return func(ctx context.Context, c Connection, cursor string) (poller.Page, error) {
		return poller.Lookback(d, poller.FetchFunc(func(ctx context.Context, cursor string) (poller.Page, error) {
			return poll(ctx, c, cursor)
		})).Fetch(ctx, cursor)
	}
}
