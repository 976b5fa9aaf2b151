// Package relay lets a consumer that cannot accept inbound connections
// receive webhooks: a public relay verifies and keeps them in a durable
// feed, and the consumer, with outbound connections only, long-polls the
// feed with intake's own poller, so its stream dedupes and checkpoints as
// usual and gets push latency without an open port.
//
// On the public side, a stream's subscription appends every event to a
// [Feed] ([Relay.Store] is its handler), and a [Handler] serves the feed:
//
//	GET /feed?after=<cursor>&limit=<n>&wait=<duration>
//	Authorization: Bearer <token>
//
// answers at once when there are items after the cursor, or holds the
// request up to wait (capped at 60 s by default) and answers as soon as
// one arrives; an empty answer carries the same cursor. This is the shape
// of Telegram's getUpdates (after an offset, with a timeout) and of
// Consul's blocking queries (an index and a wait, capped; an unchanged
// index on timeout), with the cursor, not the server's clock, saying what
// is new. A cursor older than what the feed keeps answers 410 Gone, as a
// Kubernetes watch whose resource version has expired does: the poller
// starts over and the stream's idempotency store suppresses what it had.
//
// On the consumer side, [Fetcher] is the [poller.Fetcher] for a feed; use
// it with [poller.LongPoll] and [poller.KeepSource].
package relay

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/intakehq/intake/event"
)

// Item is one event of a feed, at its cursor.
type Item struct {
	Cursor int64
	At     time.Time // when the feed stored it
	Event  event.Event
}

// Feed is a durable, append-only list of events with a monotonic cursor,
// kept for a retention window. The SQLite and Postgres backends provide
// feeds; [MemoryFeed] is one for tests and development.
// Implementations must be safe for concurrent use.
type Feed interface {
	// Append stores e at the end of the feed, durably, before it returns.
	Append(ctx context.Context, e event.Event) error
	// Read returns up to limit items after cursor, oldest first.
	Read(ctx context.Context, after int64, limit int) ([]Item, error)
	// Floor returns the cursor below which items are no longer kept: a
	// reader whose cursor is lower has missed some.
	Floor(ctx context.Context) (int64, error)
	// Changed returns a channel that is closed when an item is appended
	// after the call (by any replica, for a shared feed).
	Changed() <-chan struct{}
	// Trim deletes the items stored before t.
	Trim(ctx context.Context, before time.Time) error
}

// ErrGone is the error of a read whose cursor is below the feed's floor.
var ErrGone = errors.New("relay: cursor older than the feed keeps")

// Relay appends a stream's events to a feed and trims it to the
// retention. Create it with [New].
type Relay struct {
	feed      Feed
	retention time.Duration
	mu        sync.Mutex
	trimmed   time.Time
}

// DefaultRetention is how long a feed keeps events: 7 days, longer than
// any sender's retries, so a consumer that was away for days catches up.
const DefaultRetention = 7 * 24 * time.Hour

// New returns a relay on feed that keeps events for retention (0: the
// default, 7 days).
func New(feed Feed, retention time.Duration) *Relay {
	if retention < 0 {
		panic("relay: New with a negative retention")
	}
	if retention == 0 {
		retention = DefaultRetention
	}
	return &Relay{feed: feed, retention: retention}
}

// Store appends e to the feed; it is the handler of the stream's
// subscription that feeds the relay: stream.Handle(r.Store). Once a
// minute it also trims what is past the retention.
func (r *Relay) Store(ctx context.Context, e event.Event) error {
	if err := r.feed.Append(ctx, e); err != nil {
		return err
	}
	r.mu.Lock()
	due := time.Since(r.trimmed) > time.Minute
	if due {
		r.trimmed = time.Now()
	}
	r.mu.Unlock()
	if due {
		return r.feed.Trim(ctx, time.Now().Add(-r.retention))
	}
	return nil
}

// MemoryFeed is a [Feed] in memory, for tests and development: it is lost
// with the process. The zero value is ready to use.
type MemoryFeed struct {
	mu      sync.Mutex
	items   []Item
	next    int64 // the last cursor given
	floor   int64
	changed chan struct{}
}

func (f *MemoryFeed) changedLocked() chan struct{} {
	if f.changed == nil {
		f.changed = make(chan struct{})
	}
	return f.changed
}

// Append implements [Feed].
func (f *MemoryFeed) Append(_ context.Context, e event.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	f.items = append(f.items, Item{Cursor: f.next, At: time.Now(), Event: e})
	close(f.changedLocked())
	f.changed = make(chan struct{})
	return nil
}

// Read implements [Feed].
func (f *MemoryFeed) Read(_ context.Context, after int64, limit int) ([]Item, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Item
	for _, it := range f.items {
		if it.Cursor > after {
			out = append(out, it)
			if len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

// Floor implements [Feed].
func (f *MemoryFeed) Floor(context.Context) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.floor, nil
}

// Changed implements [Feed].
func (f *MemoryFeed) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changedLocked()
}

// Trim implements [Feed].
func (f *MemoryFeed) Trim(_ context.Context, before time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := 0
	for i < len(f.items) && f.items[i].At.Before(before) {
		f.floor = f.items[i].Cursor
		i++
	}
	f.items = append(f.items[:0], f.items[i:]...)
	return nil
}
