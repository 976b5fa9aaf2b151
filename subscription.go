package intake

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/tracing"
)

// Delivery is one event handed to one subscription. Call Ack or Nack when
// done with it: the first of the two calls counts, later calls on the same
// Delivery do nothing, so `defer d.Ack()` after a `d.Nack(err)` on the
// error path redelivers the event. Ack and Nack never wait on the store.
//
// The ack→commit window: an acked event's key is committed by the
// stream's committer, in batches, a few milliseconds after the last
// subscription acks it (with a durable queue a batch of under 128 keys
// lingers up to 5 ms for more; a failed commit is retried). A process
// killed inside that window, after Ack returned and before the commit,
// delivers the event again after the restart (or on another replica):
// at-least-once. Nothing acked is lost, but a handler whose effect must
// not run twice either makes the effect idempotent or calls
// [Delivery.AckWait], which returns only once the commit is done.
type Delivery struct {
	Event   event.Event
	Attempt int // 1 for the first delivery of the event to this subscription

	sub     *subscription
	it      *item
	gen     uint64
	settled atomic.Uint32 // 0 until the first Ack (settledAck) or Nack (settledNack)
	// versioned: a transactional ack asked for the event's version
	// (Version) to record it in its transaction, so the stream need not
	// record it again after the handler.
	versioned atomic.Bool
}

const (
	settledAck uint32 = iota + 1
	settledNack
)

// Ack reports that the event was handled. When every subscription has
// acked it, its key is committed (by the stream, in the background, a
// few milliseconds later: see the ack→commit window above); until then,
// a crash delivers the event again to every subscription, this one
// included, so with several subscriptions this ack's window lasts until
// the slowest of them acks. An Ack that
// comes after the delivery's lease ran out still counts if the event was
// not acked yet, and stops a redelivery not yet received.
func (d *Delivery) Ack() {
	if d.settled.CompareAndSwap(0, settledAck) {
		if d.sub.failing.Load() != 0 { // a read, not a write of a shared line, on every ack
			d.sub.failing.Store(0)
		}
		d.sub.ack(d.it)
	}
}

// ErrNotCommitted is returned by [Delivery.AckWait] when the stream
// stopped before the event's key was committed: the event stays queued
// (or, without a durable queue, its key is released) and is delivered
// again.
var ErrNotCommitted = errors.New("intake: the stream stopped before the ack was committed; the event will be delivered again")

// ErrNacked is returned by [Delivery.AckWait] on a delivery already
// nacked: the first call counts.
var ErrNacked = errors.New("intake: delivery already nacked")

// AckWait acks the delivery, as [Delivery.Ack] does, then waits until the
// stream has recorded the event as finished in its store: its key
// committed, so that no restart or replica delivers it again within the
// retention (or, when another subscription gave up on it, the event
// buried as dead). The key is committed once every subscription has
// acked, so with several subscriptions AckWait waits for the others too.
// It returns nil then; ctx's error if ctx ends first (the ack still
// counts, and the commit still happens); [ErrNotCommitted] if the stream
// stopped first; [ErrNacked] if the delivery was nacked already;
// [dedupe.ErrNotHeld] if a subscription let go of the event because
// another holder took it over (see [Delivery.Nack]). It costs
// the handler the commit's latency (a few milliseconds with a durable
// queue), so call it only where a duplicate effect must be avoided and
// cannot be made idempotent.
func (d *Delivery) AckWait(ctx context.Context) error {
	d.Ack()
	if d.settled.Load() == settledNack {
		return ErrNacked
	}
	ch, err := d.it.e.finishedCh()
	if ch == nil {
		return err
	}
	select {
	case <-ch:
		_, err = d.it.e.finishedCh()
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Key returns the event's idempotency key (see [event.Event.Key]): what
// a backend's transactional ack marks done, and what an effect outside
// the database can be made idempotent by.
func (d *Delivery) Key() string { return d.it.e.key }

// Last reports, for a backend's transactional ack, whether every other
// subscription has acked the event (none gave up on it and it was not
// discarded), and the retention of its key: the ack then commits the key
// itself, in the caller's transaction. See [dedupe.LastDelivery].
func (d *Delivery) Last() (retain time.Duration, last bool) {
	en := d.it.e
	last = en.remaining.Load() == 1 && d.settled.Load() == 0 &&
		en.failure.Load() == nil && !en.discarded.Load() && !en.lost.Load()
	return d.sub.retention, last
}

// Committed records, for a backend's transactional ack, that a
// transaction committed the event's key: the stream does not commit it
// again. See [dedupe.LastDelivery].
func (d *Delivery) Committed() { d.it.e.txCommitted.Store(true) }

// Subscription returns the name of the subscription the event was
// delivered to ([WithName], or "sub-1", "sub-2"… in the order made).
func (d *Delivery) Subscription() string { return d.sub.name }

// Nack reports that handling failed; the event is delivered again after
// the subscription's retry backoff, or goes to the dead-letter function
// once it has had its maximum attempts. A Nack after the lease ran out is
// ignored: the event was already scheduled again. A Nack with an error
// wrapping [dedupe.ErrNotHeld] (a transactional ack found that another
// holder took the event over) lets go of the event instead: it is not
// retried, and the stream neither commits nor buries it, since the holder
// that has it now will.
func (d *Delivery) Nack(err error) {
	if d.settled.CompareAndSwap(0, settledNack) {
		d.sub.failing.Add(1)
		d.sub.rec.Count(metric.Failed, d.Event.Source, "", 1)
		d.sub.nack(d.it, d.gen, err)
	}
}

// A handler error (or a Nack's) that carries a delay ([event.RetryAfter]:
// an API's Retry-After) is retried no sooner than that delay, capped by
// [WithMaxRetryAfter] (15 minutes by default), not by the backoff's
// maximum.

// Permanent marks err as one that no retry can fix: a [HandlerFunc] that
// returns it, or a [Delivery.Nack] given it, sends the event to the dead
// letters at once instead of retrying. It is event.WithClass(err,
// event.Permanent); any error that says its class ([event.Classed]) is
// treated by its class.
func Permanent(err error) error { return event.WithClass(err, event.Permanent) }

// Infrastructure marks err as a failure of something the handler depends
// on (its database unreachable, a network partition), not of the event: a
// [HandlerFunc] that returns it, or a [Delivery.Nack] given it, has the
// event retried with backoff without spending an attempt, so an outage
// of any length dead-letters nothing. The SQL backends' HandleTx marks a
// transaction that cannot begin so. It is event.WithClass(err,
// event.Infrastructure).
func Infrastructure(err error) error { return event.WithClass(err, event.Infrastructure) }

// HandlerFunc handles one event for [Stream.Handle]. A nil error acks the
// event; an error or a panic nacks it. [Attempt] tells, from ctx, which
// attempt this is, and ctx carries the delivery for a backend's
// transactional ack ([dedupe.DeliveryFromContext]; the SQL backends'
// HandleTx wraps a function of this shape).
type HandlerFunc func(ctx context.Context, e event.Event) error

// Attempt returns, from the context of a [Stream.Handle] function's call,
// the attempt number of the delivery (1 for the first) and the name of the
// subscription; 0 and "" for any other context. A handler uses it to log,
// or to give up early on an event it knows it cannot handle.
func Attempt(ctx context.Context) (n int, subscription string) {
	if d, ok := dedupe.DeliveryFromContext(ctx); ok {
		if d, ok := d.(*Delivery); ok {
			return d.Attempt, d.sub.name
		}
	}
	return 0, ""
}

// item is the state of one entry in one subscription, guarded by the
// subscription's mutex.
type item struct {
	e       *entry
	sub     *subscription
	attempt int       // deliveries so far (from the entry's base), those failed for infrastructure not counted
	infra   int       // infrastructure failures in a row (they spend no attempt, but grow the backoff)
	first   time.Time // the first delivery here
	gen     uint64    // bumped by each delivery, nack and lease expiry
	leased  uint64    // the gen whose lease timer runs: out to a reader while it equals gen
	done    bool
}

type timerKind uint8

const (
	timerRetry timerKind = iota // a nacked item is due again
	timerLease                  // a delivery's ack deadline
)

type timed struct {
	at   time.Time
	it   *item
	gen  uint64
	kind timerKind
}

type timerHeap []timed

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timed)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = timed{}
	*h = old[:len(old)-1]
	return x
}

// subscription delivers entries to one channel. It owns its queue, its
// timers and its lock; it tells the stream through acked when it is done
// with an entry, and never takes the stream's lock. Its pump goroutine is
// the only sender on ch.
type subscription struct {
	name      string
	cfg       subConfig
	ch        chan *Delivery
	fn        HandlerFunc // nil for Subscribe
	workers   int         // goroutines running fn
	log       *slog.Logger
	rec       metric.Recorder
	tracer    tracing.Tracer                // nil: no spans
	spanNames sync.Map                      // source → its process span's name
	maxLive   int                           // the stream's queue size: bounds the timer heap
	retention time.Duration                 // the stream's, for a transactional ack that commits a key
	acked     func(*entry)                  // called once per entry this subscription acked
	start     func(context.Context, *entry) // marks an adopted entry's delivery begun (dedupe.Starter)
	ctx       context.Context               // Run's, for the dead-letter function; set by Run

	mu     sync.Mutex
	ready  []*item
	head   int
	timers timerHeap
	closed bool // Run has stopped the subscription: Ack and Nack do nothing
	wake   chan struct{}

	lines     map[string]*line // order keys with events here (sub.mu)
	heads     *headAsker       // nil: this process alone decides the order
	staleness *staleness       // the stream's versions, for WithSkipStale

	sending atomic.Pointer[item] // the item of the delivery the pump waits to send
	busy    atomic.Int32         // handler calls running
	failing atomic.Int64         // deliveries nacked since the last ack (Health.Failing)
}

// Subscribe returns a channel that receives every event put into the
// stream (or those chosen by [WithSources] and [WithTypes]). Each
// subscription receives each event; receive from the channel until Run
// returns and closes it, and Ack or Nack every delivery. An event whose
// delivery is not acked within its ack timeout is delivered again.
//
// A subscription that is not read holds its events, and once the queue is
// full the stream answers new events with [event.ErrQueueFull]: a slow
// reader slows the senders instead of growing memory.
//
// Subscribe must be called before Run; it panics otherwise, and on an
// option with a negative value.
func (s *Stream) Subscribe(opts ...SubscribeOption) <-chan *Delivery {
	return s.subscribe(nil, 0, opts)
}

// Handle runs fn for every event (or those chosen by [WithSources] and
// [WithTypes]) in a managed subscription: [WithWorkers] calls at once, each
// with a context that ends after the ack timeout or when Run gives up
// draining. A call that returns an error or panics is retried with
// exponential backoff ([WithRetryBackoff]); after [WithMaxAttempts]
// attempts (default 30, over at least 27 hours) the event goes to the dead-letter function and is
// kept as dead (not committed: see [Stream.List] to replay or discard it).
//
// Handle must be called before Run; it panics otherwise, and on an option
// with a negative value.
func (s *Stream) Handle(fn HandlerFunc, opts ...SubscribeOption) {
	if fn == nil {
		panic("intake: Handle with a nil function")
	}
	opts = append([]SubscribeOption{WithMaxAttempts(defaultMaxAttempts)}, opts...)
	s.subscribe(fn, 1, opts)
}

func (s *Stream) subscribe(fn HandlerFunc, workers int, opts []SubscribeOption) <-chan *Delivery {
	cfg := defaultSubConfig()
	cfg.workers = workers
	for _, o := range opts {
		o(&cfg)
	}
	if fn == nil {
		cfg.workers = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != stateNew {
		panic("intake: Subscribe or Handle called after Run")
	}
	if cfg.name == "" {
		cfg.name = fmt.Sprintf("sub-%d", len(s.subs)+1)
	}
	sub := &subscription{
		name:      cfg.name,
		cfg:       cfg,
		ch:        make(chan *Delivery),
		fn:        fn,
		workers:   cfg.workers,
		log:       s.log,
		rec:       s.rec,
		tracer:    s.cfg.tracer,
		maxLive:   s.cfg.queueSize,
		retention: s.cfg.retention,
		acked:     s.acked,
		start:     s.startDelivery,
		wake:      make(chan struct{}, 1),
		lines:     map[string]*line{},
		staleness: s.staleness,
	}
	if q, ok := s.cfg.queue.(dedupe.Orderer); ok && !cfg.unordered {
		sub.heads = newHeadAsker(sub, q)
	}
	if cfg.skipStale && fn != nil && s.cfg.version == nil {
		panic("intake: WithSkipStale without WithVersion: the stream has no versions to compare")
	}
	if sub.cfg.deadLetter == nil {
		sub.cfg.deadLetter = func(_ context.Context, d DeadLetter) {
			s.log.Error("intake: event dead-lettered", "subscription", d.Subscription,
				"source", d.Event.Source, "id", d.Event.ID, "type", d.Event.Type, "attempts", d.Attempts, "err", d.Err)
		}
	}
	s.subs = append(s.subs, sub)
	return sub.ch
}

func (sub *subscription) matches(e *event.Event) bool {
	if sub.cfg.sources != nil && !sub.cfg.sources[e.Source] {
		return false
	}
	if sub.cfg.types != nil && !sub.cfg.types[e.Type] {
		return false
	}
	return true
}

// push queues an item for delivery.
func (sub *subscription) push(it *item) {
	sub.mu.Lock()
	if k := sub.orderKeyOf(it); k != "" {
		sub.enqueueOrdered(it, k)
	} else {
		sub.ready = append(sub.ready, it)
	}
	sub.mu.Unlock()
	sub.poke()
}

func (sub *subscription) poke() {
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// next returns the next item to deliver, moving due timers first, and the
// time until the next timer. sub.mu must be held. Items that ran out of
// attempts by lease expiry are returned in dead for the caller to
// dead-letter outside the lock.
func (sub *subscription) next(now time.Time) (d *Delivery, wait time.Duration, dead []*item) {
	for len(sub.timers) > 0 && !sub.timers[0].at.After(now) {
		t := heap.Pop(&sub.timers).(timed)
		if t.it.done || t.it.gen != t.gen {
			continue // acked, nacked or redelivered since
		}
		switch t.kind {
		case timerRetry:
			sub.ready = append(sub.ready, t.it)
		case timerLease:
			t.it.gen++
			sub.rec.Count(metric.Nacked, t.it.e.ev.Source, "lease", 1)
			if sub.exhausted(t.it) {
				dead = append(dead, t.it)
			} else {
				sub.ready = append(sub.ready, t.it)
			}
		}
	}
	for sub.head < len(sub.ready) {
		it := sub.ready[sub.head]
		sub.ready[sub.head] = nil
		sub.head++
		if it.done {
			continue
		}
		it.attempt++
		it.gen++
		if it.first.IsZero() {
			it.first = now
		}
		d = &Delivery{Event: it.e.ev, Attempt: it.attempt, sub: sub, it: it, gen: it.gen}
		break
	}
	if sub.head == len(sub.ready) {
		sub.ready, sub.head = sub.ready[:0], 0
	}
	wait = -1
	if len(sub.timers) > 0 {
		wait = sub.timers[0].at.Sub(now)
	}
	return d, wait, dead
}

// compactTimers drops timers made stale by acks and nacks once they
// outnumber twice the queue, so that the heap stays bounded by the queue
// size rather than by the event rate times the ack timeout. sub.mu must be
// held.
func (sub *subscription) compactTimers() {
	if len(sub.timers) <= 2*sub.maxLive+64 {
		return
	}
	live := sub.timers[:0]
	for _, t := range sub.timers {
		if !t.it.done && t.it.gen == t.gen {
			live = append(live, t)
		}
	}
	clear(sub.timers[len(live):])
	sub.timers = live
	heap.Init(&sub.timers)
}

func (sub *subscription) exhausted(it *item) bool {
	return sub.cfg.maxAttempts > 0 && it.attempt >= sub.cfg.maxAttempts
}

// sentNow reports whether it is out to a reader: delivered, its lease
// running, not waiting for a retry. Every nack, lease expiry and
// redelivery bumps gen, so a lease is current only while leased equals
// gen. sub.mu must be held.
func (sub *subscription) sentNow(it *item) bool {
	return it.gen != 0 && it.leased == it.gen
}

// stale reports whether a prepared delivery must not be sent: its event
// was acked, or it was superseded.
func (sub *subscription) stale(d *Delivery) bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return d.it.done || d.it.gen != d.gen
}

// pump moves deliveries from the queue to the channel until stop closes.
// Before every send, and whenever the subscription changes while a send
// waits for a reader, it checks that the event is still not done, so that
// a late Ack stops a redelivery that was already prepared.
func (sub *subscription) pump(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var d *Delivery // prepared, not yet sent
	for {
		wait := time.Duration(-1)
		if d == nil {
			var dead []*item
			sub.mu.Lock()
			d, wait, dead = sub.next(time.Now())
			sub.mu.Unlock()
			for _, it := range dead {
				sub.deadLetter(it, fmt.Errorf("intake: ack timeout after %d attempts", it.attempt))
			}
		}
		if d != nil {
			// An adopted event is marked started before a reader has it: a
			// crash from now on counts against it, not the backlog. (Handle's
			// workers mark their own, several at once.)
			if sub.fn == nil {
				sub.start(sub.ctx, d.it.e)
			}
			// Say which item waits to be sent before checking it once more:
			// an ack of it from now on pokes the pump.
			sub.sending.Store(d.it)
			if sub.stale(d) {
				d = nil
				continue
			}
			select {
			case sub.ch <- d:
				sub.rec.Count(metric.Delivered, d.Event.Source, "", 1)
				sub.mu.Lock()
				if d.it.gen == d.gen && !d.it.done {
					heap.Push(&sub.timers, timed{at: time.Now().Add(sub.cfg.ackTimeout), it: d.it, gen: d.gen, kind: timerLease})
					d.it.leased = d.gen
					sub.compactTimers()
				}
				sub.mu.Unlock()
				d = nil
			case <-sub.wake: // d's event may have been acked: check again
			case <-stop:
				return
			}
			sub.sending.Store(nil)
			continue
		}
		if wait < 0 {
			wait = time.Hour
		}
		timer.Reset(wait)
		select {
		case <-sub.wake:
		case <-timer.C:
		case <-stop:
			return
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// ack marks it done and tells the stream, once per item.
func (sub *subscription) ack(it *item) {
	sub.mu.Lock()
	if it.done || sub.closed {
		sub.mu.Unlock()
		return
	}
	it.done = true
	next := sub.finishOrdered(it)
	sub.mu.Unlock()
	if next || sub.sending.Load() == it {
		sub.poke() // its key's next event is ready, or a redelivery of it waits for a reader: stop it
	}
	sub.rec.Count(metric.Acked, it.e.ev.Source, "", 1)
	sub.acked(it.e)
}

func (sub *subscription) nack(it *item, gen uint64, err error) {
	sub.mu.Lock()
	if it.done || it.gen != gen || sub.closed {
		sub.mu.Unlock()
		return
	}
	it.gen++
	if errors.Is(err, dedupe.ErrNotHeld) {
		sub.mu.Unlock()
		it.e.lost.Store(true)
		sub.log.Warn("intake: event taken over by another holder; letting go of it", "subscription", sub.name,
			"source", it.e.ev.Source, "id", it.e.ev.ID)
		sub.rec.Count(metric.Nacked, it.e.ev.Source, "not_held", 1)
		sub.ack(it)
		return
	}
	class := event.ClassOf(err)
	reason := "nack"
	if class == event.Infrastructure {
		// Not the event's failure: this delivery spends no attempt, and
		// the backoff grows with the failures in a row all the same.
		it.attempt--
		it.infra++
		reason = "infrastructure"
	} else {
		it.infra = 0
	}
	if class == event.Permanent || (class != event.Infrastructure && sub.exhausted(it)) {
		sub.mu.Unlock()
		sub.deadLetter(it, err)
		return
	}
	delay := sub.retryDelay(it.attempt + it.infra)
	if d, ok := event.RetryDelay(err); ok {
		// The handler's error says when to try again (a fetch's 429
		// with Retry-After): no sooner, up to WithMaxRetryAfter's cap,
		// which may exceed the backoff's.
		delay = max(delay, min(d, sub.cfg.retryAfterMax))
	}
	heap.Push(&sub.timers, timed{at: time.Now().Add(delay), it: it, gen: it.gen, kind: timerRetry})
	sub.mu.Unlock()
	sub.poke()
	sub.rec.Count(metric.Nacked, it.e.ev.Source, reason, 1)
}

// deadLetter marks an item that ran out of attempts (or failed
// permanently): its entry will be kept as dead, not committed, once every
// subscription is done with it. It tells the dead-letter function and
// then counts the item as done here, so it is not delivered again.
func (sub *subscription) deadLetter(it *item, err error) {
	now := time.Now()
	first := it.first
	if first.IsZero() {
		first = now
	}
	class := event.ClassOf(err)
	f := &dedupe.Failure{Err: err.Error(), Class: class, Attempts: it.attempt, First: first, Last: now, Subscription: sub.name}
	it.e.failure.CompareAndSwap(nil, f)
	sub.rec.Count(metric.DeadLetter, it.e.ev.Source, "", 1)
	ctx := sub.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	sub.cfg.deadLetter(ctx, DeadLetter{Event: it.e.ev, Err: err, Class: class, Attempts: it.attempt, First: first, Last: now, Subscription: sub.name})
	sub.ack(it)
}

// drop counts an item as done here without delivering it again (the
// event was discarded).
func (sub *subscription) drop(it *item) { sub.ack(it) }

// close makes later Acks and Nacks do nothing.
func (sub *subscription) close() {
	sub.mu.Lock()
	sub.closed = true
	sub.mu.Unlock()
}

// retryDelay is the backoff after the attempt-th failed delivery:
// retryMin·2^(attempt-1), capped at retryMax, with ±20% jitter.
func (sub *subscription) retryDelay(attempt int) time.Duration {
	d := sub.cfg.retryMin
	for i := 1; i < attempt && d < sub.cfg.retryMax; i++ {
		if d > sub.cfg.retryMax/2 {
			d = sub.cfg.retryMax // doubling would pass the cap (or overflow)
			break
		}
		d *= 2
	}
	d = min(d, sub.cfg.retryMax)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// work runs the subscription's handler on deliveries until the channel is
// closed.
func (sub *subscription) work(ctx context.Context) {
	var attrs []tracing.Attr // a traced delivery's attributes, reused
	if sub.tracer != nil {
		attrs = make([]tracing.Attr, 0, 7)
	}
	for d := range sub.ch {
		sub.start(ctx, d.it.e) // an adopted event: marked started before the handler runs
		var err error
		if sub.cfg.skipStale {
			var skipped bool
			if skipped, err = sub.skipStale(ctx, d); skipped {
				d.Ack()
				continue
			}
		}
		if err != nil {
			// The versions could not be read: retried as a failure.
		} else if sub.tracer != nil {
			err = sub.traced(ctx, d, attrs)
		} else {
			err = sub.call(dedupe.ContextWithDelivery(ctx, d), d.Event)
		}
		if err == nil {
			if sub.cfg.skipStale {
				sub.applied(ctx, d)
			}
			d.Ack()
		} else {
			sub.log.Warn("intake: handler failed", "subscription", sub.name,
				"source", d.Event.Source, "id", d.Event.ID, "attempt", d.Attempt, "err", err)
			d.Nack(err)
		}
	}
}

// traced calls the handler inside a consumer span linked to the event's
// creation context; attrs is the worker's buffer for its attributes.
func (sub *subscription) traced(ctx context.Context, d *Delivery, attrs []tracing.Attr) error {
	e := &d.Event
	ctx, span := sub.tracer.Start(ctx, sub.spanName(e.Source), tracing.KindConsumer, tracing.FromMeta(e.Meta))
	err := sub.call(dedupe.ContextWithDelivery(ctx, d), d.Event)
	if !span.IsRecording() {
		span.End()
		return err
	}
	outcome := "ack"
	if err != nil {
		outcome = "retry"
		switch class := event.ClassOf(err); {
		case class == event.Infrastructure:
		case class == event.Permanent || (sub.cfg.maxAttempts > 0 && d.Attempt >= sub.cfg.maxAttempts):
			outcome = "dead"
		}
		span.Fail(err)
	}
	attrs = append(attrs[:0], tracing.String(tracing.AttrSource, e.Source), tracing.String(tracing.AttrType, e.Type), tracing.String(tracing.AttrID, e.ID),
		tracing.String(tracing.AttrVia, e.Via.String()), tracing.Int(tracing.AttrAttempt, d.Attempt),
		tracing.String(tracing.AttrSubscription, sub.name), tracing.String(tracing.AttrOutcome, outcome))
	span.SetAttributes(attrs...)
	span.End()
	return err
}

// spanName is "process" and the source, made once per source.
func (sub *subscription) spanName(source string) string {
	if n, ok := sub.spanNames.Load(source); ok {
		return n.(string)
	}
	n := "process " + source
	sub.spanNames.Store(source, n)
	return n
}

func (sub *subscription) call(ctx context.Context, e event.Event) (err error) {
	sub.busy.Add(1)
	defer sub.busy.Add(-1)
	ctx, cancel := context.WithTimeout(ctx, sub.cfg.ackTimeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("intake: handler panicked: %v", r)
		}
	}()
	return sub.fn(ctx, e)
}
