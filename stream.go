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
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/metric"
)

// Errors returned by [Stream.Run].
var (
	ErrNoSubscription = errors.New("intake: stream has no subscription")
	ErrAlreadyRunning = errors.New("intake: stream already run")
)

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
type Stream struct {
	cfg  config
	log  *slog.Logger
	keys keeper // claims, commits and releases keys; keeps events if durable
	rec  metric.Recorder

	mu      sync.Mutex
	state   int
	queued  int // entries reserved or live: not yet committed or dropped
	live    map[*entry]struct{}
	subs    []*subscription
	sources []event.Source
	drained chan struct{} // closed when draining and queued reaches 0
	stop    chan struct{} // closed to stop the pumps
}

// entry is one stored event on its way to every subscription.
type entry struct {
	ev        event.Event
	key       string
	remaining int // subscriptions that have not acked
	start     time.Time
}

// New returns a stream with the given options. See the With… functions for
// the defaults.
func New(opts ...Option) *Stream {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	var keys keeper
	switch {
	case cfg.queue != nil:
		keys = queueKeeper{cfg.queue}
		if cfg.claimLease <= 0 {
			cfg.claimLease = 30 * time.Second
		}
	default:
		if cfg.store == nil {
			cfg.store = dedupe.NewMemory()
		}
		keys = storeKeeper{cfg.store}
		if cfg.claimLease <= 0 {
			cfg.claimLease = 15 * time.Minute
		}
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	if cfg.queueSize < 1 {
		cfg.queueSize = 1
	}
	return &Stream{
		cfg:     cfg,
		log:     cfg.logger,
		keys:    keys,
		rec:     cfg.metrics,
		live:    make(map[*entry]struct{}),
		drained: make(chan struct{}),
		stop:    make(chan struct{}),
	}
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
//   - [event.ErrQueueFull] if the queue is full (nothing is claimed);
//   - [event.ErrNotRunning] or [event.ErrClosed] outside Run;
//   - [event.ErrInvalid] if e has no ID or Source;
//   - the store's error if the claim failed.
//
// The retryable ones come in an [*event.RetryError] with a suggested delay.
// Put implements [event.Sink].
func (s *Stream) Put(ctx context.Context, e event.Event) error {
	if e.ID == "" || e.Source == "" {
		return fmt.Errorf("%w: id %q, source %q", event.ErrInvalid, e.ID, e.Source)
	}
	s.mu.Lock()
	switch {
	case s.state == stateNew:
		s.mu.Unlock()
		s.rec.Count(metric.Rejected, e.Source, "not-running", 1)
		return event.RetryAfter(s.cfg.retryAfter, event.ErrNotRunning)
	case s.state != stateRunning:
		s.mu.Unlock()
		s.rec.Count(metric.Rejected, e.Source, "closed", 1)
		return event.RetryAfter(s.cfg.retryAfter, event.ErrClosed)
	case s.queued >= s.cfg.queueSize:
		s.mu.Unlock()
		s.rec.Count(metric.Rejected, e.Source, "full", 1)
		return event.RetryAfter(s.cfg.retryAfter, event.ErrQueueFull)
	}
	s.queued++ // reserve a slot before claiming, so a full queue costs no store call
	s.mu.Unlock()

	if e.Received.IsZero() {
		e.Received = time.Now()
	}
	key := e.Key()
	st, err := s.keys.claim(ctx, key, &e, s.cfg.claimLease)
	if err != nil {
		s.unreserve()
		s.rec.Count(metric.Rejected, e.Source, "store", 1)
		return event.RetryAfter(s.cfg.retryAfter, fmt.Errorf("intake: claim %s: %w", e.ID, err))
	}
	switch st {
	case dedupe.Done:
		s.unreserve()
		s.rec.Count(metric.Duplicate, e.Source, "done", 1)
		return event.ErrDuplicate
	case dedupe.Pending:
		s.unreserve()
		s.rec.Count(metric.Duplicate, e.Source, "pending", 1)
		return event.RetryAfter(s.cfg.retryAfter, event.ErrPending)
	}

	en := &entry{ev: e, key: key, start: time.Now()}
	if !s.admit(en) {
		s.release(en.key)
		s.unreserve()
		s.rec.Count(metric.Rejected, e.Source, "closed", 1)
		return event.RetryAfter(s.cfg.retryAfter, event.ErrClosed)
	}
	s.rec.Count(metric.Accepted, e.Source, "", 1)
	return nil
}

// admit hands a claimed entry, whose slot is reserved, to every
// subscription that wants it. It returns false, changing nothing, once the
// stream has stopped running.
func (s *Stream) admit(en *entry) bool {
	s.mu.Lock()
	if s.state != stateRunning {
		s.mu.Unlock()
		return false
	}
	for _, sub := range s.subs {
		if sub.matches(&en.ev) {
			en.remaining++
			sub.push(&item{e: en})
		}
	}
	unwanted := en.remaining == 0
	if !unwanted {
		s.live[en] = struct{}{}
	}
	depth := s.queued
	s.mu.Unlock()
	s.rec.Gauge(metric.QueueDepth, "", float64(depth))
	if unwanted {
		s.finish(en) // no subscription wants it: done at once
	}
	return true
}

func (s *Stream) unreserve() {
	s.mu.Lock()
	s.queued--
	s.signalDrainedLocked()
	s.mu.Unlock()
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

// finish commits an entry that every subscription acked and frees its slot.
func (s *Stream) finish(en *entry) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := s.keys.commit(ctx, en.key, s.cfg.retention)
	cancel()
	if err != nil {
		// The claim stays pending until its lease ends; a redelivery after
		// that is possible. Nothing is lost.
		s.log.Error("intake: commit failed", "source", en.ev.Source, "id", en.ev.ID, "err", err)
	}
	s.mu.Lock()
	delete(s.live, en)
	s.queued--
	depth := s.queued
	s.signalDrainedLocked()
	s.mu.Unlock()
	s.rec.Count(metric.Committed, en.ev.Source, "", 1)
	s.rec.Gauge(metric.QueueDepth, "", float64(depth))
	s.rec.Observe(metric.Processing, en.ev.Source, time.Since(en.start))
}

func (s *Stream) release(key string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.keys.release(ctx, key); err != nil {
		s.log.Error("intake: release failed", "key", key, "err", err)
	}
}

// Run runs every source and delivers events to the subscriptions until ctx
// is done. It then shuts down: sources stop and Put answers
// [event.ErrClosed]; what is queued keeps being delivered for up to the
// drain timeout; handler calls still running get a canceled context;
// subscription channels are closed; the keys of events left undelivered
// are released (so a provider's retry is accepted later) and counted as
// dropped. Run returns nil after all of that, with no goroutine left, or
// an error at once if the stream cannot start.
//
// A source whose Run returns an error is logged and run again after an
// exponential backoff that never gives up.
func (s *Stream) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.state != stateNew {
		s.mu.Unlock()
		return ErrAlreadyRunning
	}
	if len(s.subs) == 0 {
		s.mu.Unlock()
		return ErrNoSubscription
	}
	s.state = stateRunning
	subs := s.subs
	sources := s.sources
	s.mu.Unlock()

	handlerCtx, cancelHandlers := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHandlers()

	var pumps, workers, srcs sync.WaitGroup
	for _, sub := range subs {
		pumps.Add(1)
		go func() {
			defer pumps.Done()
			sub.pump(s.stop)
		}()
		for range sub.workers {
			workers.Add(1)
			go func() {
				defer workers.Done()
				sub.work(handlerCtx)
			}()
		}
	}
	var keeper sync.WaitGroup
	if s.keys.durable() {
		keeper.Add(1)
		go func() {
			defer keeper.Done()
			s.keepQueue(ctx)
		}()
	}
	for _, src := range sources {
		srcs.Add(1)
		go func() {
			defer srcs.Done()
			s.runSource(ctx, src)
		}()
	}

	<-ctx.Done()
	keeper.Wait()
	s.mu.Lock()
	s.state = stateDraining
	s.signalDrainedLocked()
	s.mu.Unlock()
	srcs.Wait()

	t := time.NewTimer(s.cfg.drainTimeout)
	select {
	case <-s.drained:
	case <-t.C:
	}
	t.Stop()
	cancelHandlers()
	close(s.stop)
	pumps.Wait()
	for _, sub := range subs {
		close(sub.ch)
	}
	workers.Wait()

	s.mu.Lock()
	s.state = stateStopped
	left := make([]*entry, 0, len(s.live))
	keys := make([]string, 0, len(s.live))
	for en := range s.live {
		left = append(left, en)
		keys = append(keys, en.key)
	}
	s.live = nil
	s.mu.Unlock()
	if len(left) == 0 {
		return nil
	}
	gctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err := s.keys.giveBack(gctx, keys)
	cancel()
	if s.keys.durable() {
		// Still stored: the next stream on this queue delivers them.
		s.log.Info("intake: undelivered events left in the queue at shutdown", "count", len(left), "err", err)
		return nil
	}
	for _, en := range left {
		s.rec.Count(metric.Dropped, en.ev.Source, "", 1)
	}
	s.log.Error("intake: undelivered events released at shutdown; their senders must deliver them again",
		"count", len(left), "drain_timeout", s.cfg.drainTimeout, "err", err)
	return nil
}

// keepQueue runs while the stream runs with a durable queue: every third of
// the claim lease it renews the claims on the events this stream holds and
// adopts events whose holder is gone (this process before a crash, or
// another replica), as many as half the free room of the queue.
func (s *Stream) keepQueue(ctx context.Context) {
	q := s.cfg.queue
	every := max(s.cfg.claimLease/3, 10*time.Millisecond)
	var extended time.Time
	for ctx.Err() == nil {
		s.mu.Lock()
		var keys []string
		if time.Since(extended) >= every {
			keys = make([]string, 0, len(s.live))
			for en := range s.live {
				keys = append(keys, en.key)
			}
		}
		// Reserve the room adoption may fill: at most half of what is free
		// (and 1,000), so that sources are not turned away meanwhile.
		free := min(max(s.cfg.queueSize-s.queued, 0)/2, 1000)
		s.queued += free
		s.mu.Unlock()

		if keys != nil {
			extended = time.Now()
			if err := q.Extend(ctx, keys, s.cfg.claimLease); err != nil && ctx.Err() == nil {
				s.log.Error("intake: renewing claims failed", "count", len(keys), "err", err)
			}
		}
		adopted, got := 0, 0
		if free > 0 {
			items, err := q.Adopt(ctx, free, s.cfg.claimLease)
			if err != nil && ctx.Err() == nil {
				s.log.Error("intake: adopting queued events failed", "err", err)
			}
			got = len(items)
			for _, it := range items {
				en := &entry{ev: it.Event, key: it.Key, start: time.Now()}
				if !s.admit(en) {
					// Stopped meanwhile: give it straight back.
					_ = q.Extend(context.WithoutCancel(ctx), []string{it.Key}, 0)
					continue
				}
				adopted++
			}
			if adopted > 0 {
				s.log.Info("intake: adopted queued events", "count", adopted)
			}
		}
		s.mu.Lock()
		s.queued -= free - adopted
		s.signalDrainedLocked()
		s.mu.Unlock()

		if free > 0 && got == free {
			continue // a backlog: adopt more as soon as there is room
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
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
		s.log.Error("intake: source failed; restarting", "source", src.Name(), "err", err, "delay", d)
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
