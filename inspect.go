package intake

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intakehq/intake/dedupe"
)

// defaultDeadCapacity bounds the dead events the in-memory default keeps.
const defaultDeadCapacity = 10_000

// deadList keeps dead events in memory for the in-memory default: the
// newest defaultDeadCapacity of them; older ones are evicted and counted.
type deadList struct {
	n       atomic.Int64 // len(recs), read without the lock on the hot path
	mu      sync.Mutex
	recs    map[string]dedupe.Record
	order   []string // keys, oldest first; may hold keys removed since
	cap     int
	evicted atomic.Int64
}

func newDeadList(capacity int) *deadList {
	return &deadList{recs: make(map[string]dedupe.Record), cap: capacity}
}

func (l *deadList) add(r dedupe.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.recs[r.Key]; !ok {
		l.order = append(l.order, r.Key)
	}
	l.recs[r.Key] = r
	defer func() { l.n.Store(int64(len(l.recs))) }()
	for len(l.recs) > l.cap && len(l.order) > 0 {
		k := l.order[0]
		l.order = l.order[1:]
		if _, ok := l.recs[k]; ok {
			delete(l.recs, k)
			l.evicted.Add(1)
		}
	}
	if len(l.order) > 2*l.cap+64 { // compact keys removed since
		live := l.order[:0]
		for _, k := range l.order {
			if _, ok := l.recs[k]; ok {
				live = append(live, k)
			}
		}
		l.order = live
	}
}

func (l *deadList) get(key string) (dedupe.Record, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.recs[key]
	return r, ok
}

func (l *deadList) remove(key string) (dedupe.Record, bool) {
	if l.n.Load() == 0 {
		return dedupe.Record{}, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.recs[key]
	delete(l.recs, key)
	l.n.Store(int64(len(l.recs)))
	return r, ok
}

func (l *deadList) all() []dedupe.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]dedupe.Record, 0, len(l.recs))
	for _, r := range l.recs {
		out = append(out, r)
	}
	return out
}

// List returns the events the stream holds that match f, in the order
// they arrived: queued ones (waiting or in delivery) and dead ones. With a
// durable queue it asks the queue, so it also sees what other replicas
// hold; with the in-memory default it sees this process, and keeps the
// newest 10,000 dead events.
func (s *Stream) List(ctx context.Context, f dedupe.Filter) ([]dedupe.Record, error) {
	if in := s.inspector(); in != nil {
		recs, err := in.List(ctx, f)
		s.markInFlight(recs)
		return recs, err
	}
	recs := s.dead().all()
	dead := make(map[string]bool, len(recs))
	for _, r := range recs {
		dead[r.Key] = true
	}
	s.mu.Lock()
	for en := range s.live {
		if !dead[en.key] { // buried, on its way out of the live set: listed once, dead
			recs = append(recs, s.record(en))
		}
	}
	s.mu.Unlock()
	out := recs[:0]
	for _, r := range recs {
		if (f.State == 0 || r.State == f.State) && (f.Source == "" || r.Event.Source == f.Source) &&
			(f.Type == "" || r.Event.Type == f.Type) && r.Seq > f.After {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b dedupe.Record) int { return int(a.Seq - b.Seq) })
	s.markInFlight(out)
	return out[:min(len(out), f.Max())], nil
}

// record shows a live entry. s.mu must be held.
func (s *Stream) record(en *entry) dedupe.Record {
	return dedupe.Record{Key: en.key, Seq: en.seq, State: dedupe.Queued, Attempts: en.base, Event: en.ev}
}

// Get returns the event the stream holds under key, queued or dead, or an
// error wrapping [dedupe.ErrNotFound].
func (s *Stream) Get(ctx context.Context, key string) (dedupe.Record, error) {
	if in := s.inspector(); in != nil {
		return in.Get(ctx, key)
	}
	if r, ok := s.dead().get(key); ok {
		return r, nil
	}
	if en := s.liveEntry(key); en != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.record(en), nil
	}
	return dedupe.Record{}, fmt.Errorf("intake: %q: %w", key, dedupe.ErrNotFound)
}

// Replay puts a dead event back in the queue with its attempts reset, and
// delivers it at once. It returns an error wrapping [dedupe.ErrNotFound]
// for a key that is not dead, and [event.ErrQueueFull] or
// [event.ErrNotRunning] when the stream cannot take it now.
func (s *Stream) Replay(ctx context.Context, key string) error {
	if in := s.inspector(); in != nil {
		if err := in.Replay(ctx, key); err != nil {
			return err
		}
		s.adoptNow() // take it now rather than at the next look
		return nil
	}
	// Taken off the dead list first, so that of two replays at once (two
	// operators, two bulk jobs) one puts the event back and the other finds
	// it not dead: replayed once per death.
	r, ok := s.dead().remove(key)
	if !ok {
		return fmt.Errorf("intake: %q is not dead: %w", key, dedupe.ErrNotFound)
	}
	if err := s.Put(ctx, r.Event); err != nil {
		s.dead().add(r)
		return fmt.Errorf("intake: replay %q: %w", key, err)
	}
	return nil
}

// Discard forgets an event the stream holds, queued or dead: a later
// arrival of its key is a new event. A delivery already received by a
// subscriber is not taken back, but the event is not delivered again.
func (s *Stream) Discard(ctx context.Context, key string) error {
	en := s.dropLive(key)
	if in := s.inspector(); in != nil {
		return in.Discard(ctx, key)
	}
	if _, ok := s.dead().remove(key); !ok && en == nil {
		return fmt.Errorf("intake: %q: %w", key, dedupe.ErrNotFound)
	}
	return nil
}

// Committed tells whether the stream's store holds key as done: the event
// was handled by every subscription that wanted it (or acked in a
// transaction) and its key committed at about at, kept until until (the
// retention: an arrival of the key before then is a duplicate). ok is
// false for a key that is not done, and for a store that cannot tell
// without claiming ([dedupe.DoneLookup]: Memory, Postgres and SQLite can).
func (s *Stream) Committed(ctx context.Context, key string) (at, until time.Time, ok bool, err error) {
	var l dedupe.DoneLookup
	if s.cfg.queue != nil {
		l, _ = s.cfg.queue.(dedupe.DoneLookup)
	} else {
		l, _ = s.cfg.store.(dedupe.DoneLookup)
	}
	if l == nil {
		return time.Time{}, time.Time{}, false, nil
	}
	until, ok, err = l.DoneUntil(ctx, key)
	if err != nil || !ok {
		return time.Time{}, time.Time{}, false, err
	}
	return until.Add(-s.cfg.retention), until, true, nil
}

// SubscriptionNames returns the names of the stream's subscriptions, in
// the order they were made.
func (s *Stream) SubscriptionNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.subs))
	for _, sub := range s.subs {
		names = append(names, sub.name)
	}
	return names
}

// ReplayMany replays, as Replay, those of keys that are dead, and returns
// how many it replayed: with a durable queue that has
// [dedupe.BatchInspector], in one round trip. It implements
// [dedupe.BatchInspector] for package bulk.
func (s *Stream) ReplayMany(ctx context.Context, keys []string) (int, error) {
	if in, ok := s.inspector().(dedupe.BatchInspector); ok {
		n, err := in.ReplayMany(ctx, keys)
		if n > 0 {
			s.adoptNow()
		}
		return n, err
	}
	return s.each(ctx, keys, s.Replay)
}

// DiscardMany discards, as Discard, those of keys that hold an event, and
// returns how many it discarded (see ReplayMany).
func (s *Stream) DiscardMany(ctx context.Context, keys []string) (int, error) {
	in, ok := s.inspector().(dedupe.BatchInspector)
	if !ok {
		return s.each(ctx, keys, s.Discard)
	}
	for _, k := range keys {
		s.dropLive(k)
	}
	return in.DiscardMany(ctx, keys)
}

// each acts on keys one by one and counts the keys it acted on; a key
// that is not there (ErrNotFound) is not counted.
func (s *Stream) each(ctx context.Context, keys []string, act func(context.Context, string) error) (int, error) {
	n := 0
	for _, k := range keys {
		switch err := act(ctx, k); {
		case err == nil:
			n++
		case !errors.Is(err, dedupe.ErrNotFound):
			return n, err
		}
	}
	return n, nil
}

// dropLive stops the delivery of key's live entry, if this process has
// one, and returns it.
func (s *Stream) dropLive(key string) *entry {
	en := s.liveEntry(key)
	if en != nil {
		en.discarded.Store(true)
		for _, it := range en.items {
			it.sub.drop(it)
		}
	}
	return en
}

// markInFlight sets InFlight on the records of events out to a
// subscriber of this stream now.
func (s *Stream) markInFlight(recs []dedupe.Record) {
	if len(recs) == 0 {
		return
	}
	out := map[string]bool{}
	s.mu.Lock()
	var live []*entry
	for en := range s.live {
		live = append(live, en)
	}
	s.mu.Unlock()
	for _, en := range live {
		for _, it := range en.items {
			it.sub.mu.Lock()
			sent := it.attempt > en.base && !it.done && it.sub.sentNow(it)
			it.sub.mu.Unlock()
			if sent {
				out[en.key] = true
			}
		}
	}
	for i := range recs {
		recs[i].InFlight = out[recs[i].Key]
	}
}

func (s *Stream) inspector() dedupe.Inspector {
	if s.cfg.queue != nil {
		return s.cfg.queue
	}
	return nil
}

func (s *Stream) dead() *deadList { return s.keys.(storeKeeper).dead }

func (s *Stream) liveEntry(key string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	for en := range s.live {
		if en.key == key {
			return en
		}
	}
	return nil
}
