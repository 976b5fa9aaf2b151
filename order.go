package intake

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/metric"
)

// WithOrderKey names the object each event is about (its order key), so
// that every subscription hands out one event of an object at a time, in
// the order the stream stored them; other objects go on in parallel. The
// stream sets the key in the event's Meta ([event.MetaOrder]) as it
// stores it, unless its source set one; an empty key leaves the event
// unordered. Package order has keys for the providers whose payloads name
// the object (order.Stripe, order.GitHub, order.Shopify, order.Graph).
//
// A subscription keeps order unless given [WithUnordered]. An event that
// fails holds its key while it is retried; once dead-lettered, the key
// goes on with its next event. With a queue that is a [dedupe.Orderer]
// (Postgres, SQLite) the order holds across every replica sharing the
// queue, through crashes and adoption; with other queues and with the
// in-memory store it holds within each process. Defaults to none: no
// event is ordered.
func WithOrderKey(fn func(event.Event) string) Option {
	return func(c *config) { c.orderKey = fn }
}

// WithVersion gives each event a version (the provider's timestamp or
// sequence of the object's state; false when it has none), which a
// subscription given [WithSkipStale] compares with the last version it
// handled for the event's order key. Package order has versions for the
// providers that send one (order.StripeVersion, order.ShopifyVersion).
// Defaults to none.
func WithVersion(fn func(event.Event) (v int64, ok bool)) Option {
	return func(c *config) { c.version = fn }
}

// WithUnordered makes a subscription take events as they come, several of
// one order key at once, even when the stream has an order key
// ([WithOrderKey]). By default a subscription of a stream with an order
// key is ordered.
func WithUnordered() SubscribeOption { return func(c *subConfig) { c.unordered = true } }

// WithSkipStale makes a [Stream.Handle] subscription skip (ack without
// calling its function) an event whose version ([WithVersion]) is older
// than the last version it handled for the event's order key: a state
// older than one already applied. An event with the same version, or
// without one, is handled. Skips are counted (metric.Stale, and Stale in
// [Stream.Stats]). The last versions are kept by the queue when it is a
// [dedupe.Versions] (Postgres, SQLite: shared by every replica and kept
// for the retention after their last use), otherwise in the process's
// memory for the retention. A version is recorded after the handler
// returns nil: with a transactional handler, a crash between its commit
// and the record leaves the older version recorded, and a stale event
// arriving then is handled once more. Handle panics if the stream has no
// WithVersion, and Subscribe ignores it. By default every event is
// handled, stale or not.
func WithSkipStale() SubscribeOption { return func(c *subConfig) { c.skipStale = true } }

// orderKeyOf returns the order key of it in its subscription, or "".
func (sub *subscription) orderKeyOf(it *item) string {
	if sub.cfg.unordered {
		return ""
	}
	return it.e.ev.Meta[event.MetaOrder]
}

// setOrderKey sets e's order key from fn unless it has one, copying its
// Meta rather than changing the caller's.
func setOrderKey(e *event.Event, fn func(event.Event) string) {
	if fn == nil || e.Meta[event.MetaOrder] != "" {
		return
	}
	k := fn(*e)
	if k == "" {
		return
	}
	m := make(map[string]string, len(e.Meta)+1)
	maps.Copy(m, e.Meta)
	m[event.MetaOrder] = k
	e.Meta = m
}

// line is an order key's events in one subscription: the one out (its
// delivery, retries included) and those waiting behind it.
type line struct {
	busy    *item
	waiting []*item
	asking  bool                // a head query is due or under way
	delay   time.Duration       // until the next query, while another holder has the head
	passed  map[string]struct{} // events done here whose rows may still be pending
	// known are the events the last query listed after the one it handed
	// out, in stored order: an event stored since comes after them all,
	// so the next of them this subscription takes is the head once the
	// one out is done, with no query.
	known []dedupe.Head
}

// enqueueOrdered puts it behind its order key's line; sub.mu must be held.
func (sub *subscription) enqueueOrdered(it *item, k string) {
	l := sub.lines[k]
	if l == nil {
		l = &line{}
		sub.lines[k] = l
	}
	l.waiting = append(l.waiting, it)
	sub.advance(k, l)
}

// advance hands the line's next event out when none is: at once when
// this process alone decides the order, otherwise once the queue says it
// is the head. sub.mu must be held.
func (sub *subscription) advance(k string, l *line) {
	if l.busy != nil || len(l.waiting) == 0 || l.asking {
		return
	}
	if sub.heads == nil {
		sub.take(l, 0)
		return
	}
	if sub.takeHead(l, l.known) {
		return
	}
	l.known = nil
	l.asking = true
	sub.heads.ask(k, 0)
}

// takeHead hands out the line's event that comes first in heads (a
// key's pending events in stored order), skipping those done here and
// those the subscription does not take, and reports whether it did; it
// stops at an event it does not hold (another holder's, or one on its
// way here). sub.mu must be held.
func (sub *subscription) takeHead(l *line, heads []dedupe.Head) bool {
	for j, h := range heads {
		if i := waitingIndex(l.waiting, h.Key); i >= 0 {
			sub.take(l, i)
			l.known = heads[j+1:]
			return true
		}
		if _, ok := l.passed[h.Key]; ok || !sub.matchesHead(h) {
			continue // done here (its commit under way), or not this subscription's
		}
		return false
	}
	return false
}

// take makes the line's i-th waiting event the one out. sub.mu must be
// held.
func (sub *subscription) take(l *line, i int) {
	it := l.waiting[i]
	l.waiting = append(l.waiting[:i], l.waiting[i+1:]...)
	l.busy = it
	l.delay = 0
	sub.ready = append(sub.ready, it)
}

// finishOrdered lets the line of it go on once it is done here, reporting
// whether its next event is ready. sub.mu must be held.
func (sub *subscription) finishOrdered(it *item) (next bool) {
	k := sub.orderKeyOf(it)
	if k == "" {
		return false
	}
	l := sub.lines[k]
	if l == nil {
		return false
	}
	if l.busy == it {
		l.busy = nil
	} else if i := indexOf(l.waiting, it); i >= 0 {
		l.waiting = append(l.waiting[:i], l.waiting[i+1:]...)
	}
	if sub.heads != nil {
		if l.passed == nil {
			l.passed = map[string]struct{}{}
		}
		l.passed[it.e.key] = struct{}{}
	}
	if l.busy == nil && len(l.waiting) == 0 && !l.asking {
		delete(sub.lines, k)
		return false
	}
	sub.advance(k, l)
	return l.busy != nil
}

func indexOf(items []*item, it *item) int {
	for i, x := range items {
		if x == it {
			return i
		}
	}
	return -1
}

// matchesHead reports whether the subscription takes an event of the
// head's source and type.
func (sub *subscription) matchesHead(h dedupe.Head) bool {
	return (sub.cfg.sources == nil || sub.cfg.sources[h.Source]) && (sub.cfg.types == nil || sub.cfg.types[h.Type])
}

// resolve hands out the line's event that heads its key in the queue, if
// this process holds it; otherwise it asks again later. sub.mu must be
// held.
func (sub *subscription) resolve(k string, heads []dedupe.Head) {
	l := sub.lines[k]
	if l == nil {
		return
	}
	l.asking = false
	if l.busy != nil || len(l.waiting) == 0 {
		if l.busy == nil {
			delete(sub.lines, k)
		}
		return
	}
	if sub.takeHead(l, heads) {
		return
	}
	// Drop what the queue no longer lists: committed.
	for key := range l.passed {
		if !listed(heads, key) {
			delete(l.passed, key)
		}
	}
	l.delay = min(max(2*l.delay, minHeadWait), maxHeadWait)
	l.asking = true
	sub.heads.ask(k, l.delay)
}

const (
	minHeadWait = 5 * time.Millisecond
	maxHeadWait = 500 * time.Millisecond
	headDepth   = 16  // events listed per key and query
	headBatch   = 512 // keys per query
	headQueries = 4   // queries in flight at most, per subscription
	headLinger  = time.Millisecond
)

func waitingIndex(items []*item, key string) int {
	for i, it := range items {
		if it.e.key == key {
			return i
		}
	}
	return -1
}

func listed(heads []dedupe.Head, key string) bool {
	for _, h := range heads {
		if h.Key == key {
			return true
		}
	}
	return false
}

// headAsker asks an ordering queue which event heads each order key a
// subscription waits on, many keys per query, one query at a time.
type headAsker struct {
	sub *subscription
	q   dedupe.Orderer

	inflight atomic.Int32 // queries out

	mu    sync.Mutex
	want  map[string]struct{}
	later map[string]time.Time
	wake  chan struct{}
}

func newHeadAsker(sub *subscription, q dedupe.Orderer) *headAsker {
	return &headAsker{sub: sub, q: q, want: map[string]struct{}{}, later: map[string]time.Time{}, wake: make(chan struct{}, 1)}
}

// ask queues k for the next query, or for one after delay.
func (a *headAsker) ask(k string, delay time.Duration) {
	a.mu.Lock()
	if delay <= 0 {
		a.want[k] = struct{}{}
	} else {
		a.later[k] = time.Now().Add(delay)
	}
	a.mu.Unlock()
	if delay <= 0 {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

// run queries until stop closes.
func (a *headAsker) run(ctx context.Context, stop <-chan struct{}, logErr func(error)) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// While another query is out, let keys gather, as a group commit
		// does: one query for many keys costs the database little more
		// than one for one. A query with none out goes at once (a hot
		// key's next event waits for no linger).
		if a.inflight.Load() > 0 {
			a.mu.Lock()
			n := len(a.want)
			a.mu.Unlock()
			if n > 0 && n < headBatch/8 {
				time.Sleep(headLinger)
			}
		}
		now := time.Now()
		next := time.Duration(-1)
		a.mu.Lock()
		for k, at := range a.later {
			if !at.After(now) {
				a.want[k] = struct{}{}
				delete(a.later, k)
			} else if d := at.Sub(now); next < 0 || d < next {
				next = d
			}
		}
		keys := make([]string, 0, min(len(a.want), headBatch))
		for k := range a.want {
			if len(keys) == headBatch {
				next = 0
				break
			}
			keys = append(keys, k)
			delete(a.want, k)
		}
		a.mu.Unlock()
		if len(keys) > 0 {
			a.inflight.Add(1)
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			heads, err := a.q.Heads(qctx, keys, headDepth)
			cancel()
			a.inflight.Add(-1)
			if err != nil {
				logErr(err)
			}
			a.sub.mu.Lock()
			for _, k := range keys {
				a.sub.resolve(k, heads[k]) // on an error: none listed, asked again later
			}
			a.sub.mu.Unlock()
			a.sub.poke()
			continue
		}
		if next < 0 {
			next = time.Hour
		}
		timer.Reset(next)
		select {
		case <-a.wake:
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

// staleness decides whether a delivery is older than what its
// subscription applied, and records what it applied.
type staleness struct {
	version   func(event.Event) (int64, bool)
	store     dedupe.Versions // nil: kept in memory
	retention time.Duration

	mu   sync.Mutex
	mem  map[string]memVersion // sub "\x00" order key
	seen int
}

type memVersion struct {
	v  int64
	at time.Time
}

// stale reports whether e is older than the last version sub handled for
// its order key k, and e's version.
func (st *staleness) stale(ctx context.Context, sub, k string, e event.Event) (stale bool, v int64, ok bool, err error) {
	v, ok = st.version(e)
	if !ok || k == "" {
		return false, v, ok, nil
	}
	if st.store != nil {
		last, err := st.store.LastVersions(ctx, sub, []string{k})
		if err != nil {
			return false, v, ok, err
		}
		w, had := last[k]
		return had && v < w, v, ok, nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	m, had := st.mem[sub+"\x00"+k]
	return had && time.Since(m.at) < st.retention && v < m.v, v, ok, nil
}

// save records v as handled for (sub, k) unless a greater one is.
func (st *staleness) save(ctx context.Context, sub, k string, v int64) error {
	if st.store != nil {
		return st.store.SaveVersion(ctx, sub, k, v, st.retention)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	now := time.Now()
	if st.mem == nil {
		st.mem = map[string]memVersion{}
	}
	id := sub + "\x00" + k
	if m, ok := st.mem[id]; ok && now.Sub(m.at) < st.retention && m.v > v {
		v = m.v
	}
	st.mem[id] = memVersion{v: v, at: now}
	// Every so many saves, forget what the retention has passed.
	if st.seen++; st.seen >= 4096 && st.seen >= len(st.mem) {
		st.seen = 0
		for id, m := range st.mem {
			if now.Sub(m.at) >= st.retention {
				delete(st.mem, id)
			}
		}
	}
	return nil
}

// Version implements [dedupe.VersionedDelivery]: the event's order key and
// version when its subscription skips stale versions ([WithSkipStale]).
// A backend calls it to record the version in a transactional ack; once
// it has, the stream does not record it again when the handler returns.
func (d *Delivery) Version() (orderKey string, v int64, retain time.Duration, ok bool) {
	sub := d.sub
	if !sub.cfg.skipStale || sub.staleness.version == nil {
		return "", 0, 0, false
	}
	k := sub.orderKeyOf(d.it)
	if k == "" {
		return "", 0, 0, false
	}
	v, ok = sub.staleness.version(d.Event)
	if ok {
		d.versioned.Store(true)
	}
	return k, v, sub.staleness.retention, ok
}

// skipStale acks d without calling the handler when its event is stale,
// reporting whether it did. A failure to read the versions is the
// handler's failure (the event is retried).
func (sub *subscription) skipStale(ctx context.Context, d *Delivery) (skipped bool, err error) {
	stale, _, _, err := sub.staleness.stale(ctx, sub.name, sub.orderKeyOf(d.it), d.Event)
	if err != nil || !stale {
		return false, err
	}
	sub.rec.Count(metric.Stale, d.Event.Source, "", 1)
	return true, nil
}

// applied records the version of an event the handler handled.
func (sub *subscription) applied(ctx context.Context, d *Delivery) {
	if d.versioned.Load() {
		return // recorded by the transactional ack that committed with the handler's writes
	}
	v, ok := sub.staleness.version(d.Event)
	k := sub.orderKeyOf(d.it)
	if !ok || k == "" {
		return
	}
	if err := sub.staleness.save(ctx, sub.name, k, v); err != nil {
		sub.log.Warn("intake: recording an event's version failed", "subscription", sub.name,
			"source", d.Event.Source, "id", d.Event.ID, "err", err)
	}
}
