// Package intake unifies the two ways a program learns about changes in
// another system, polling and webhooks, behind one event type and one
// idempotent stream.
//
// Sources (a [webhook.Handler] mounted in your HTTP server, a
// [poller.Poller], or your own [event.Source]) put events into a [Stream].
// The stream claims each event's key in an idempotency store, queues the
// event, and only then answers the source; so a webhook is acknowledged,
// and a poller advances its cursor, only once the event is stored. The
// stream then delivers each event to every subscription, once, whichever
// path it came by, and commits the key when all of them have acked.
//
// The defaults keep everything in memory: an event that was acknowledged
// but not yet delivered is lost if the process crashes (a clean shutdown
// drains the queue first). Use a durable store and queue from a backend
// module where that matters.
//
// [webhook.Handler]: https://pkg.go.dev/github.com/intakehq/intake/webhook#Handler
// [poller.Poller]: https://pkg.go.dev/github.com/intakehq/intake/poller#Poller
package intake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/logsample"
	"github.com/intakehq/intake/metric"
)

// Errors returned by [Stream.Run].
var (
	ErrNoSubscription = errors.New("intake: stream has no subscription")
	ErrAlreadyRunning = errors.New("intake: stream already run")
	// ErrHandlerStuck means a Handle function was still running when Run
	// gave up waiting for it, the drain timeout and a grace after its
	// context was canceled; Run returned anyway, naming the subscription.
	ErrHandlerStuck = errors.New("intake: handler still running at shutdown")
)

// shutdownGrace is how long Run waits, after the drain timeout has
// canceled the handlers' contexts, for handler calls that ignore it.
const shutdownGrace = time.Second

const (
	stateNew = iota
	stateRunning
	stateDraining
	stateStopped
)

// Stream dedupes events from its sources, queues them in a bounded queue
// and delivers each to every subscription.
//
// Register sources with [Stream.Add] and subscriptions with
// [Stream.Subscribe] or [Stream.Handle], then call [Stream.Run] once. Put
// may be called from any goroutine; a Stream is safe for concurrent use.
// Create one with [New]; the zero value is not usable.
//
// The stream owns the count of entries and their commit: an entry acked by
// every subscription goes to a committer goroutine that [Stream.Run]
// starts and stops, which commits keys in batches, so that an Ack never
// waits on the store.
type Stream struct {
	cfg   config
	log   *slog.Logger
	keys  keeper          // claims, commits and releases keys; keeps events if durable
	rec   metric.Recorder // stats, then the user's
	stats *statsRecorder
	done  *committer
	logs  logsample.Sampler // repeated errors: at most once a second per reason

	started chan struct{}  // closed once Run takes events and its sources have started
	starter dedupe.Starter // the queue, when it counts crashes only against started events
	// startsWaited counts the marks of started events so far (the first
	// syncStarts are waited for); startsAsync, the marks written beside
	// their handlers, which Run waits for before it returns.
	startsWaited atomic.Int64
	startsAsync  sync.WaitGroup
	storeCheck   atomic.Pointer[storeCheck] // the last store ping
	adoptWake    chan struct{}              // pokes the adopter (a replay, room for a backlog's next batch)
	staleness    *staleness                 // versions applied per order key (WithSkipStale)

	mu     sync.Mutex
	state  int
	seq    int64 // the last entry's seq
	queued int   // entries admitted and not yet committed or dropped
	live   map[*entry]struct{}
	// oldest and newest are the ends of the live entries' list in the
	// order they were admitted (entry.older, entry.newer): the oldest
	// held event for Health, without a pass over the queue.
	oldest, newest *entry
	subs           []*subscription
	sources        []event.Source
	drained        chan struct{} // closed when draining and queued reaches 0

	adoptHungry bool // the adopter waits for room for a batch of a backlog
	// uncertain are the keys of claims that failed with a durable queue:
	// the adopter gives them back (see giveBackUncertain).
	uncertain map[string]struct{}
}

// entry is one stored event on its way to every subscription.
type entry struct {
	ev        event.Event
	key       string
	seq       int64 // order of admission, for inspection
	base      int   // attempts counted before this process took it (adoption)
	remaining atomic.Int32
	start     time.Time
	// older and newer link the live entries in the order admitted
	// (Stream.oldest); s.mu guards them.
	older, newer *entry
	items        []*item // one per subscription that wants it; set by admit
	failure      atomic.Pointer[dedupe.Failure]
	discarded    atomic.Bool
	lost         atomic.Bool // another holder took it over: finished here without a store call
	// txCommitted: a transactional ack committed the key (the last
	// subscription's); the committer has nothing to write.
	txCommitted atomic.Bool
	done        []string // subscriptions that acked it in a committed transaction (adoption)
	// mustStart: adopted from a crashed holder through a dedupe.Starter,
	// which counts a crash against it only once marked started; startOnce
	// marks it before its first delivery here.
	mustStart bool
	startOnce sync.Once

	// The end of the entry, for AckWait: finished once its key is
	// committed (or it is buried, or released) or it is given back at
	// shutdown (finErr).
	finMu  sync.Mutex
	finCh  chan struct{} // made by the first waiter
	fin    bool
	finErr error
}

// finish records the entry's end and wakes its waiters; only the first
// call counts.
func (en *entry) finish(err error) {
	en.finMu.Lock()
	defer en.finMu.Unlock()
	if en.fin {
		return
	}
	en.fin, en.finErr = true, err
	if en.finCh != nil {
		close(en.finCh)
	}
}

// finishedCh returns a channel closed when the entry finishes, or, when
// it has already, nil and its error.
func (en *entry) finishedCh() (<-chan struct{}, error) {
	en.finMu.Lock()
	defer en.finMu.Unlock()
	if en.fin {
		return nil, en.finErr
	}
	if en.finCh == nil {
		en.finCh = make(chan struct{})
	}
	return en.finCh, nil
}

// New returns a stream with the given options. See the With… functions for
// the defaults. It panics if both [WithStore] and [WithQueue] are given: a
// queue is its own store.
func New(opts ...Option) *Stream {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	var keys keeper
	switch {
	case cfg.queue != nil && cfg.store != nil:
		panic("intake: WithStore and WithQueue given together; a durable queue is its own idempotency store")
	case cfg.queue != nil:
		keys = queueKeeper{cfg.queue}
		if cfg.claimLease == 0 {
			cfg.claimLease = 30 * time.Second
		}
	default:
		if cfg.store == nil {
			cfg.store = dedupe.NewMemory()
		}
		keys = storeKeeper{s: cfg.store, dead: newDeadList(defaultDeadCapacity)}
		if cfg.claimLease == 0 {
			cfg.claimLease = 15 * time.Minute
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	stats := newStatsRecorder(cfg.metrics)
	s := &Stream{
		started:   make(chan struct{}),
		cfg:       cfg,
		log:       cfg.logger,
		keys:      keys,
		rec:       stats,
		stats:     stats,
		live:      make(map[*entry]struct{}),
		drained:   make(chan struct{}),
		adoptWake: make(chan struct{}, 1),
	}
	if st, ok := cfg.queue.(dedupe.Starter); ok {
		s.starter = st
	}
	s.done = newCommitter(s)
	s.staleness = &staleness{version: cfg.version, retention: cfg.retention}
	if v, ok := cfg.queue.(dedupe.Versions); ok {
		s.staleness.store = v
	}
	return s
}

// Add registers sources to run with the stream. It must be called before
// Run; it panics otherwise.
func (s *Stream) Add(sources ...event.Source) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		panic("intake: Add called after Run")
	}
	s.sources = append(s.sources, sources...)
}

// Put stores e: it claims e's key, queues e for every subscription, and
// returns nil. It does not wait for delivery. Otherwise it returns an error
// that wraps:
//
//   - [event.ErrDuplicate] if the key is done;
//   - [event.ErrPending] if another claim holds the key;
//   - [event.ErrQueueFull] if the event is new and the queue is full
//     (its claim is released: nothing is recorded);
//   - [event.ErrNotRunning] or [event.ErrClosed] outside Run;
//   - [event.ErrInvalid] if e has no ID or Source, or the store refuses it
//     as one it can never keep;
//   - the store's error if the claim failed.
//
// The key is claimed before the queue's room is checked, so that a
// duplicate is answered as one even when the queue is full; a new event
// that finds the queue full costs a claim and a release.
//
// The retryable errors come in an [*event.RetryError] with a suggested
// delay; ErrDuplicate and ErrInvalid do not. Put implements [event.Sink].
func (s *Stream) Put(ctx context.Context, e event.Event) error {
	if err := s.precheck(&e); err != nil {
		return err
	}
	key := e.Key()
	st, err := s.keys.claim(ctx, key, &e, s.cfg.claimLease)
	return s.settle(e, key, st, err)
}

// PutMany stores events as Put would, answering each in order; their
// claims share one step where the durable queue can take many
// ([dedupe.BatchQueue]): a poller's page in one statement. It implements
// [event.BatchSink].
func (s *Stream) PutMany(ctx context.Context, events []event.Event) []error {
	errs := make([]error, len(events))
	var idx []int
	var keys []string
	var evs []event.Event
	for i := range events {
		e := events[i]
		if errs[i] = s.precheck(&e); errs[i] != nil {
			continue
		}
		idx, keys, evs = append(idx, i), append(keys, e.Key()), append(evs, e)
	}
	if len(idx) == 0 {
		return errs
	}
	sts, cerrs := s.keys.claimMany(ctx, keys, evs, s.cfg.claimLease)
	for j, i := range idx {
		errs[i] = s.settle(evs[j], keys[j], sts[j], cerrs[j])
	}
	return errs
}

// precheck refuses what cannot be put now, and sets Received.
func (s *Stream) precheck(e *event.Event) error {
	if e.ID == "" || e.Source == "" {
		return fmt.Errorf("%w: id %q, source %q", event.ErrInvalid, e.ID, e.Source)
	}
	s.mu.Lock()
	state := s.state
	s.mu.Unlock()
	switch state {
	case stateNew:
		s.rec.Count(metric.Rejected, e.Source, "not-running", 1)
		return event.RetryAfter(s.cfg.retryAfter, event.ErrNotRunning)
	case stateRunning:
	default:
		s.rec.Count(metric.Rejected, e.Source, "closed", 1)
		return event.RetryAfter(s.cfg.retryAfter, event.ErrClosed)
	}
	if e.Received.IsZero() {
		e.Received = time.Now()
	}
	setOrderKey(e, s.cfg.orderKey)
	return nil
}

// settle answers a claim: a duplicate, a refusal, or an event to admit.
func (s *Stream) settle(e event.Event, key string, st dedupe.State, err error) error {
	switch {
	case errors.Is(err, event.ErrInvalid):
		s.rec.Count(metric.Rejected, e.Source, "invalid", 1)
		return fmt.Errorf("intake: claim %q: %w", e.ID, err)
	case err != nil:
		s.rec.Count(metric.Rejected, e.Source, "store", 1)
		if s.keys.durable() {
			s.mu.Lock()
			if s.uncertain == nil {
				s.uncertain = make(map[string]struct{})
			}
			s.uncertain[key] = struct{}{}
			s.mu.Unlock()
			s.adoptNow()
		}
		return event.RetryAfter(s.cfg.retryAfter, fmt.Errorf("intake: claim %q: %w", e.ID, err))
	}
	switch st {
	case dedupe.Done:
		s.rec.Count(metric.Duplicate, e.Source, "done", 1)
		return event.ErrDuplicate
	case dedupe.Pending:
		if s.done.has(key) { // acked here, its commit under way
			s.rec.Count(metric.Duplicate, e.Source, "done", 1)
			return event.ErrDuplicate
		}
		s.rec.Count(metric.Duplicate, e.Source, "pending", 1)
		return event.RetryAfter(s.cfg.retryAfter, event.ErrPending)
	}

	// A resend of a dead event: it lives again. Out of the dead list
	// before it is admitted, since once admitted it may die again at once.
	var wasDead dedupe.Record
	var had bool
	sk, memory := s.keys.(storeKeeper)
	if memory {
		wasDead, had = sk.dead.remove(key)
	}
	en := &entry{ev: e, key: key, start: time.Now()}
	if err := s.admit(en); err != nil {
		// A durable queue keeps the event, given back for any holder to
		// adopt when there is room: a sender told "pending" meanwhile (by
		// another replica: a webhook's 409, a poll's duplicate) has
		// handed it over. Deleting it lost such events.
		s.unclaim(en.key)
		if had {
			sk.dead.add(wasDead) // not taken after all: still dead
		}
		reason := "closed"
		if errors.Is(err, event.ErrQueueFull) {
			reason = "full"
		}
		s.rec.Count(metric.Rejected, e.Source, reason, 1)
		return event.RetryAfter(s.cfg.retryAfter, err)
	}
	s.rec.Count(metric.Accepted, e.Source, "", 1)
	return nil
}

// admit takes a slot for a claimed entry and hands the entry to every
// subscription that wants it. It returns [event.ErrQueueFull] or
// [event.ErrClosed], changing nothing, when there is no room or the stream
// no longer runs.
func (s *Stream) admit(en *entry) error {
	s.mu.Lock()
	switch {
	case s.state != stateRunning:
		s.mu.Unlock()
		return event.ErrClosed
	case s.queued >= s.cfg.queueSize:
		s.mu.Unlock()
		return event.ErrQueueFull
	}
	s.queued++
	s.seq++
	en.seq = s.seq
	var subs []*subscription
	for _, sub := range s.subs {
		if sub.matches(&en.ev) && !slices.Contains(en.done, sub.name) {
			subs = append(subs, sub)
			en.items = append(en.items, &item{e: en, sub: sub, attempt: en.base})
		}
	}
	en.remaining.Store(int32(len(subs)))
	s.live[en] = struct{}{}
	en.older, s.newest = s.newest, en
	if en.older != nil {
		en.older.newer = en
	} else {
		s.oldest = en
	}
	var exhausted []int
	for i, sub := range subs {
		if sub.exhausted(en.items[i]) {
			exhausted = append(exhausted, i) // out of attempts before it arrived (crashes)
			continue
		}
		sub.push(en.items[i])
	}
	depth := s.queued
	s.mu.Unlock()
	s.rec.Gauge(metric.QueueDepth, "", float64(depth))
	for _, i := range exhausted {
		subs[i].deadLetter(en.items[i], fmt.Errorf("intake: out of attempts after %d (the process handling it stopped each time)", en.base))
	}
	if len(subs) == 0 {
		s.done.add(en) // no subscription wants it: done at once
	}
	return nil
}

// acked is called by a subscription that acked en; the last one hands en
// to the committer.
func (s *Stream) acked(en *entry) {
	if en.remaining.Add(-1) == 0 {
		s.done.add(en)
	}
}

// unlinkLocked takes en out of the list of live entries. s.mu must be
// held.
func (s *Stream) unlinkLocked(en *entry) {
	if en.older != nil {
		en.older.newer = en.newer
	} else {
		s.oldest = en.newer
	}
	if en.newer != nil {
		en.newer.older = en.older
	} else {
		s.newest = en.older
	}
	en.older, en.newer = nil, nil
}

// committed frees the slots of entries whose keys are committed.
func (s *Stream) committed(batch []*entry) {
	s.mu.Lock()
	for _, en := range batch {
		if _, ok := s.live[en]; ok {
			delete(s.live, en)
			s.unlinkLocked(en)
			s.queued--
		}
	}
	depth := s.queued
	s.signalDrainedLocked()
	wake := s.adoptHungry && (s.cfg.queueSize-s.queued)/2 >= adoptBatch(s.cfg.queueSize)
	if wake {
		s.adoptHungry = false
	}
	s.mu.Unlock()
	if wake {
		s.adoptNow()
	}
	now := time.Now()
	for _, en := range batch {
		if en.lost.Load() {
			en.finish(dedupe.ErrNotHeld)
		} else {
			en.finish(nil)
		}
		if en.failure.Load() == nil && !en.discarded.Load() && !en.lost.Load() { // buried, released or let go: not committed
			s.rec.Count(metric.Committed, en.ev.Source, "", 1)
		}
		s.rec.Observe(metric.Processing, en.ev.Source, now.Sub(en.start))
	}
	s.rec.Gauge(metric.QueueDepth, "", float64(depth))
}

func (s *Stream) signalDrainedLocked() {
	if s.state == stateDraining && s.queued == 0 {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
}

// unclaim undoes a claim this stream cannot take in: the key is released
// (nothing kept) in a store, the event given back in a durable queue.
func (s *Stream) unclaim(key string) {
	if !s.keys.durable() {
		s.release(key)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.keys.giveBack(ctx, []string{key}); err != nil {
		s.logs.Log(s.log, slog.LevelError, "release", "intake: giving back a claim failed; trying again", "key", key, "err", err)
		s.mu.Lock()
		if s.uncertain == nil {
			s.uncertain = make(map[string]struct{})
		}
		s.uncertain[key] = struct{}{} // given back by the adopter's next look
		s.mu.Unlock()
	}
}

func (s *Stream) release(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.keys.release(ctx, key); err != nil {
		s.logs.Log(s.log, slog.LevelError, "release", "intake: release failed", "key", key, "err", err)
	}
}

// Run runs every source and delivers events to the subscriptions until ctx
// is done. It then shuts down: sources stop and Put answers
// [event.ErrClosed]; what is queued keeps being delivered for up to the
// drain timeout, while a durable queue's claims keep being renewed;
// handler calls still running get a canceled context, and a second after
// that Run stops waiting for calls that ignore it and returns
// [ErrHandlerStuck] naming their subscription; subscription
// channels are closed; acked keys are committed; the keys of events left
// undelivered are released (so a provider's retry is accepted later) and
// counted as dropped, or, with a durable queue, given back for the next
// stream to adopt. Run returns nil after all of that, with no goroutine
// left, or an error at once if the stream cannot start.
//
// A source whose Run returns an error is logged and run again after an
// exponential backoff that never gives up.
func (s *Stream) Run(ctx context.Context) error {
	if err := s.start(); err != nil {
		return err
	}
	handlerCtx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()

	var subs, sources, commits, renewals, checks group
	stopSubs, stopCommits, stopRenewals := make(chan struct{}), make(chan struct{}), make(chan struct{})
	stopChecks := make(chan struct{})
	checks.Go(func() { s.checkStore(stopChecks) })
	defer func() { close(stopChecks); checks.Wait() }()
	for _, sub := range s.subs {
		sub.ctx = handlerCtx
		if sub.heads != nil {
			for range headQueries {
				subs.Go(func() {
					sub.heads.run(handlerCtx, stopSubs, func(err error) {
						s.logs.Log(s.log, slog.LevelWarn, "heads", "intake: asking the queue for the order of events failed; asking again", "subscription", sub.name, "err", err)
					})
				})
			}
		}
		subs.Go(func() {
			sub.pump(stopSubs)
			close(sub.ch) // the pump was its only sender
		})
		for range sub.workers {
			subs.Go(func() { sub.work(handlerCtx) })
		}
	}
	commits.Go(func() { s.done.run(stopCommits) })
	if s.keys.durable() {
		renewals.Go(func() { s.renew(stopRenewals) })
		sources.Go(func() { s.adopt(ctx) })
	}
	for _, src := range s.sources {
		sources.Go(func() { s.runSource(ctx, src) })
	}
	sources.Go(func() { s.signalStarted(ctx) })

	<-ctx.Done()
	s.setState(stateDraining)
	sources.Wait()
	t := time.NewTimer(s.cfg.drainTimeout)
	select {
	case <-s.drained:
	case <-t.C:
	}
	t.Stop()
	cancelHandlers()
	close(stopSubs)
	stuck := s.waitSubscriptions(&subs)
	s.startsAsync.Wait() // each ends within its 5 s, or with the handlers' context
	for _, sub := range s.subs {
		sub.close()
	}
	close(stopCommits)
	commits.Wait()
	close(stopRenewals)
	renewals.Wait()
	s.setState(stateStopped)
	s.giveBack()
	if len(stuck) > 0 {
		s.log.Error("intake: handler calls ignored their canceled context; Run returns without them, their events given back",
			"subscriptions", stuck)
		return fmt.Errorf("%w: subscription %s", ErrHandlerStuck, strings.Join(stuck, ", "))
	}
	return nil
}

// startDelivery marks an adopted entry started in its queue before its
// first delivery here (dedupe.Starter), so that a crash from now on
// counts an attempt against it, and against none of the backlog still
// waiting. It runs once per entry; a failure is logged and the delivery
// goes on (a crash then counts nothing against it).
//
// The first syncStarts marks after Run starts are waited for; later ones
// are written beside the handler. An event that kills its process at
// once is thus charged for the crash whenever it is among the first
// deliveries of a restart; and it gets there, since what was adopted
// before it is committed in each run while it kills the process: so it
// still runs out of attempts, while the marks of a restart's backlog
// (every event after a crash) cost the handlers no wait.
func (s *Stream) startDelivery(ctx context.Context, en *entry) {
	if !en.mustStart {
		return
	}
	en.startOnce.Do(func() {
		if s.startsWaited.Add(1) <= syncStarts {
			s.markStarted(ctx, en)
			return
		}
		s.startsAsync.Add(1)
		go func() {
			defer s.startsAsync.Done()
			s.markStarted(ctx, en)
		}()
	})
}

// syncStarts is how many adopted events' marks a stream waits for after
// its start (startDelivery).
const syncStarts = 64

func (s *Stream) markStarted(ctx context.Context, en *entry) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.starter.Start(ctx, []string{en.key}); err != nil && ctx.Err() == nil {
		s.logs.Log(s.log, slog.LevelWarn, "start", "intake: marking an adopted event's delivery begun failed; a crash now counts no attempt against it",
			"source", en.ev.Source, "id", en.ev.ID, "err", err)
	}
}

// Started returns a channel that is closed once Run has started: Put
// takes events, and every source that says when it has started (an
// [event.Starter]: each webhook.Handler added) has, so that a webhook
// sent then is answered as by a running stream rather than 503. It is
// never closed if Run is not called, or returns before (a context
// already done). Tests and programs that must not send too soon wait
// on it instead of polling.
func (s *Stream) Started() <-chan struct{} { return s.started }

// signalStarted closes s.started once every Starter source has started,
// or returns when ctx ends first.
func (s *Stream) signalStarted(ctx context.Context) {
	for _, src := range s.sources {
		st, ok := src.(event.Starter)
		if !ok {
			continue
		}
		select {
		case <-st.Started():
		case <-ctx.Done():
			return
		}
	}
	close(s.started)
}

// waitSubscriptions waits for the pumps and workers, at most
// shutdownGrace, and returns the names of the subscriptions whose handler
// calls are still running.
func (s *Stream) waitSubscriptions(subs *group) []string {
	done := make(chan struct{})
	go func() {
		subs.Wait() // outlives Run only while a stuck handler call does
		close(done)
	}()
	t := time.NewTimer(shutdownGrace)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
	}
	var stuck []string
	for _, sub := range s.subs {
		if n := sub.busy.Load(); n > 0 {
			stuck = append(stuck, fmt.Sprintf("%q (%d calls)", sub.name, n))
		}
	}
	return stuck
}

func (s *Stream) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		return ErrAlreadyRunning
	}
	if len(s.subs) == 0 {
		return ErrNoSubscription
	}
	s.state = stateRunning
	return nil
}

func (s *Stream) setState(state int) {
	s.mu.Lock()
	s.state = state
	s.signalDrainedLocked()
	s.mu.Unlock()
}

// giveBack deals with the entries left when Run stops: a durable queue
// keeps them for the next stream; otherwise their keys are released.
func (s *Stream) giveBack() {
	s.mu.Lock()
	keys := make([]string, 0, len(s.live))
	left := make([]*entry, 0, len(s.live))
	for en := range s.live {
		keys = append(keys, en.key)
		left = append(left, en)
	}
	s.live = nil
	s.oldest, s.newest = nil, nil
	s.mu.Unlock()
	if len(left) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := s.keys.giveBack(ctx, keys)
	cancel()
	for _, en := range left {
		en.finish(ErrNotCommitted)
	}
	if s.keys.durable() {
		// Still stored: the next stream on this queue delivers them.
		s.log.Info("intake: undelivered events left in the queue at shutdown", "count", len(left), "err", err)
		return
	}
	for _, en := range left {
		s.rec.Count(metric.Dropped, en.ev.Source, "", 1)
	}
	s.log.Error("intake: undelivered events released at shutdown; their senders must deliver them again",
		"count", len(left), "drain_timeout", s.cfg.drainTimeout, "err", err)
}

// liveKeys returns the keys of the entries the stream holds.
func (s *Stream) liveKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.live))
	for en := range s.live {
		keys = append(keys, en.key)
	}
	return keys
}

// renew runs while the stream holds a durable queue's claims, draining
// included: every third of the claim lease it renews the claims on every
// entry the stream holds, each renewal bounded by that third, until stop
// closes.
func (s *Stream) renew(stop <-chan struct{}) {
	every := max(s.cfg.claimLease/3, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		keys := s.liveKeys()
		if len(keys) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		err := s.cfg.queue.Extend(ctx, keys, s.cfg.claimLease)
		cancel()
		if err != nil {
			s.logs.Log(s.log, slog.LevelError, "renew", "intake: renewing claims failed", "count", len(keys), "err", err)
		}
	}
}

// adopt runs while the stream runs with a durable queue: at start, then
// every second (or every third of the claim lease, if shorter), and at
// once when the queue says another holder gave events back or closed
// ([dedupe.Waker]: Postgres's NOTIFY), it adopts
// events whose holder is gone (this process before a crash, or another
// replica; the backends tell a dead holder from a slow one by a lock its
// process holds), up to half the free room of the queue and 1,000 at a
// time, and again at once while batches come back full, or when a replay
// asks. It reserves no room: what no longer fits when it arrives (sources
// filled the queue meanwhile) is given straight back.
func (s *Stream) adopt(ctx context.Context) {
	q := s.cfg.queue
	every := max(min(s.cfg.claimLease/3, time.Second), time.Millisecond)
	batch := adoptBatch(s.cfg.queueSize)
	var ready <-chan struct{} // another holder says there is something to adopt
	if w, ok := q.(dedupe.Waker); ok {
		ready = w.AdoptReady()
	}
	backlog := false // the last look took all it asked for: there may be more
	for ctx.Err() == nil {
		s.giveBackUncertain(ctx, every)
		s.mu.Lock()
		room := max(s.cfg.queueSize-s.queued, 0)
		n := min(max(room/2, min(room, 1)), maxAdopt) // half the room, one at least: a queue of one adopts too
		hungry := backlog && n < batch
		if hungry {
			// A backlog, and too little room for a batch: wait until the
			// subscribers have freed room for one (committed wakes us),
			// rather than adopt a few at a time or sleep a full interval.
			s.adoptHungry = true
		}
		s.mu.Unlock()
		got := 0
		if n > 0 && !hungry {
			items, err := q.Adopt(ctx, n, s.cfg.claimLease)
			if err != nil && ctx.Err() == nil {
				s.logs.Log(s.log, slog.LevelError, "adopt", "intake: adopting queued events failed", "err", err)
			}
			got = len(items)
			var back []string
			for _, it := range items {
				en := &entry{ev: it.Event, key: it.Key, base: it.Attempts, done: it.Done, start: time.Now(), mustStart: s.starter != nil && it.Crashed}
				if err := s.admit(en); err != nil {
					back = append(back, it.Key)
				}
			}
			if len(back) > 0 {
				gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), every)
				_ = q.Extend(gctx, back, 0) // or it is adopted once its lease ends
				cancel()
			}
			if adopted := got - len(back); adopted > 0 {
				s.log.Info("intake: adopted queued events", "count", adopted)
			}
			backlog = got == n
			if backlog {
				continue // a backlog: adopt more as soon as there is room
			}
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
			backlog = false // look again, whatever the room
		case <-s.adoptWake:
			t.Stop()
		case <-ready:
			t.Stop()
			backlog = false
		}
	}
}

// giveBackUncertain gives back the keys of claims that failed. A claim
// whose write committed but whose reply was lost (a connection cut after
// the commit) leaves its event stored and held by this holder, which does
// not have it: no other holder adopts the event while this one lives, and
// every resend is answered pending, so it would wait for this process to
// die. Given back, it is adopted (here or elsewhere) and delivered. For a
// claim that failed outright the call changes nothing (a give-back only
// touches what this holder holds), and a key this stream has in memory
// (claimed again by a resend) is kept. The adopter calls it between its
// adoptions, so it never gives back what its own adoption has just
// taken; keys it could not give back (the store still down) are tried at
// the adopter's next look.
func (s *Stream) giveBackUncertain(ctx context.Context, limit time.Duration) {
	s.mu.Lock()
	if len(s.uncertain) == 0 {
		s.mu.Unlock()
		return
	}
	for en := range s.live {
		delete(s.uncertain, en.key)
	}
	keys := make([]string, 0, min(len(s.uncertain), maxAdopt))
	for k := range s.uncertain {
		if len(keys) == maxAdopt {
			break // the rest at the next look: one bounded statement each
		}
		keys = append(keys, k)
	}
	s.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), limit)
	err := s.cfg.queue.Extend(gctx, keys, 0)
	cancel()
	if err != nil {
		s.logs.Log(s.log, slog.LevelError, "give-back", "intake: giving back the keys of failed claims failed; trying again", "count", len(keys), "err", err)
		return
	}
	s.mu.Lock()
	for _, k := range keys {
		delete(s.uncertain, k)
	}
	s.mu.Unlock()
}

// maxAdopt is the most events one adoption takes.
const maxAdopt = 1000

// adoptBatch is the room, in events, for which an adopter working through
// a backlog waits before it adopts again: a quarter of the queue, at most
// maxAdopt, so that each adoption is a batch worth its statement.
func adoptBatch(queueSize int) int { return max(min(queueSize/4, maxAdopt), 1) }

// adoptNow makes the adopter look at once.
func (s *Stream) adoptNow() {
	select {
	case s.adoptWake <- struct{}{}:
	default:
	}
}

func (s *Stream) runSource(ctx context.Context, src event.Source) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = s.cfg.restartMin
	b.MaxInterval = s.cfg.restartMax
	b.MaxElapsedTime = 0 // never stop restarting
	b.Reset()
	for {
		started := time.Now()
		err := runSafely(ctx, src, s)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			s.log.Info("intake: source finished", "source", src.Name())
			return
		}
		if time.Since(started) > s.cfg.restartMax {
			b.Reset() // it ran well for a while: start the backoff over
		}
		d := b.NextBackOff()
		s.rec.Count(metric.SourceError, src.Name(), "", 1)
		s.logs.Log(s.log, slog.LevelError, "source:"+src.Name(), "intake: source failed; restarting", "source", src.Name(), "err", err, "delay", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func runSafely(ctx context.Context, src event.Source, sink event.Sink) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("intake: source %s panicked: %v", src.Name(), r)
		}
	}()
	return src.Run(ctx, sink)
}

// group runs goroutines and waits for them.
type group struct{ wg sync.WaitGroup }

func (g *group) Go(fn func()) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		fn()
	}()
}

func (g *group) Wait() { g.wg.Wait() }

// Logger returns the stream's logger ([WithLogger]), so that what is
// mounted beside the stream (its console) logs to the same place.
func (s *Stream) Logger() *slog.Logger { return s.log }
