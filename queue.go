package intake

import (
	"context"
	"time"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// Queue is a durable queue with the idempotency store built in, provided by
// a backend module (SQLite, Postgres). It claims an event's key and stores
// the event in one atomic step, so that no crash between the two can mark
// an event seen without keeping it, and it keeps the event until Commit or
// Release. With a Queue, a Stream survives kill -9: what was acknowledged
// to a source and not yet acked by every subscription is delivered again
// after a restart, or by another replica sharing the queue.
//
// Each Queue value is one holder: claims it makes or adopts are its own,
// and Extend renews only those. Implementations must be safe for
// concurrent use. The suite in package intaketest checks all of this
// against a real server.
type Queue interface {
	// Enqueue claims key for lease and stores e under it, atomically, if
	// the key is absent or its previous claim or retention has expired, and
	// returns Claimed. Otherwise it stores nothing and returns Pending or
	// Done.
	Enqueue(ctx context.Context, key string, e event.Event, lease time.Duration) (dedupe.State, error)

	// Adopt claims for lease up to n stored events whose claim has expired
	// (their holder crashed, or gave them back with Extend), oldest first,
	// and returns them.
	Adopt(ctx context.Context, n int, lease time.Duration) ([]Stored, error)

	// Extend renews this holder's claims on keys for lease. A lease of zero
	// gives them back: they stay stored and can be adopted at once.
	Extend(ctx context.Context, keys []string, lease time.Duration) error

	// Commit marks key done for retain and deletes its stored event.
	Commit(ctx context.Context, key string, retain time.Duration) error

	// Release deletes key's claim and stored event, as if never enqueued.
	Release(ctx context.Context, key string) error
}

// Stored is an event kept by a [Queue], with its idempotency key.
type Stored struct {
	Key   string
	Event event.Event
}

// WithQueue makes the stream keep events in q, a durable queue, instead of
// claiming keys in the store and holding events only in memory. The store
// set by [WithStore] is then unused. The claim lease (see
// [WithClaimLease]) defaults to 30 seconds with a queue: the stream renews
// its claims every third of it, and a crashed holder's events are adopted
// by the next stream that looks after it ends.
func WithQueue(q Queue) Option { return func(c *config) { c.queue = q } }

// keeper is how the stream claims, commits and releases keys: the store
// alone, or a durable queue that keeps the events too.
type keeper interface {
	claim(ctx context.Context, key string, e *event.Event, lease time.Duration) (dedupe.State, error)
	commit(ctx context.Context, key string, retain time.Duration) error
	release(ctx context.Context, key string) error
	// giveBack is what shutdown does with events left undelivered.
	giveBack(ctx context.Context, keys []string) error
	durable() bool
}

type storeKeeper struct{ s dedupe.Store }

func (k storeKeeper) claim(ctx context.Context, key string, _ *event.Event, lease time.Duration) (dedupe.State, error) {
	return k.s.Claim(ctx, key, lease)
}
func (k storeKeeper) commit(ctx context.Context, key string, retain time.Duration) error {
	return k.s.Commit(ctx, key, retain)
}
func (k storeKeeper) release(ctx context.Context, key string) error { return k.s.Release(ctx, key) }

// giveBack releases the keys: the events are gone from memory, so a
// sender's retry must be accepted.
func (k storeKeeper) giveBack(ctx context.Context, keys []string) error {
	var first error
	for _, key := range keys {
		if err := k.s.Release(ctx, key); err != nil && first == nil {
			first = err
		}
	}
	return first
}
func (storeKeeper) durable() bool { return false }

type queueKeeper struct{ q Queue }

func (k queueKeeper) claim(ctx context.Context, key string, e *event.Event, lease time.Duration) (dedupe.State, error) {
	return k.q.Enqueue(ctx, key, *e, lease)
}
func (k queueKeeper) commit(ctx context.Context, key string, retain time.Duration) error {
	return k.q.Commit(ctx, key, retain)
}
func (k queueKeeper) release(ctx context.Context, key string) error { return k.q.Release(ctx, key) }

// giveBack keeps the events stored and ends this stream's claims, so that
// a restart or another replica delivers them at once.
func (k queueKeeper) giveBack(ctx context.Context, keys []string) error {
	return k.q.Extend(ctx, keys, 0)
}
func (queueKeeper) durable() bool { return true }
