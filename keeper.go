package intake

import (
	"context"
	"time"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// WithQueue makes the stream keep events in q, a durable queue from a
// backend module, instead of claiming keys in a store and holding events
// only in memory. It cannot be combined with [WithStore]: the queue is its
// own idempotency store, and [New] panics if both are given. The claim
// lease (see [WithClaimLease]) defaults to 30 seconds with a queue: the
// stream renews its claims every third of it, while it drains too, and a
// crashed holder's events are adopted by the next stream that looks after
// the lease ends.
func WithQueue(q dedupe.Queue) Option { return func(c *config) { c.queue = q } }

// keeper is how the stream claims, commits and releases keys: the store
// alone, or a durable queue that keeps the events too.
type keeper interface {
	claim(ctx context.Context, key string, e *event.Event, lease time.Duration) (dedupe.State, error)
	claimMany(ctx context.Context, keys []string, events []event.Event, lease time.Duration) ([]dedupe.State, []error)
	commit(ctx context.Context, keys []string, retain time.Duration) error
	// bury keeps en as dead with f instead of committing it.
	bury(ctx context.Context, en *entry, f dedupe.Failure, retain time.Duration) error
	release(ctx context.Context, key string) error
	// giveBack is what shutdown does with events left undelivered.
	giveBack(ctx context.Context, keys []string) error
	durable() bool
}

// storeKeeper claims keys in a store and keeps dead events in memory,
// bounded.
type storeKeeper struct {
	s    dedupe.Store
	dead *deadList
}

// bury releases the key, so that a provider's resend is accepted, and
// keeps the event in the dead list.
func (k storeKeeper) bury(ctx context.Context, en *entry, f dedupe.Failure, _ time.Duration) error {
	k.dead.add(dedupe.Record{Key: en.key, Seq: en.seq, State: dedupe.Dead, Attempts: f.Attempts, Failure: &f, Event: en.ev})
	return k.s.Release(ctx, en.key)
}

func (k storeKeeper) claim(ctx context.Context, key string, _ *event.Event, lease time.Duration) (dedupe.State, error) {
	return k.s.Claim(ctx, key, lease)
}

func (k storeKeeper) claimMany(ctx context.Context, keys []string, _ []event.Event, lease time.Duration) ([]dedupe.State, []error) {
	sts, errs := make([]dedupe.State, len(keys)), make([]error, len(keys))
	for i, key := range keys {
		sts[i], errs[i] = k.s.Claim(ctx, key, lease)
	}
	return sts, errs
}

// commit commits each key; a retry after an error commits again those
// already done, which a store allows.
func (k storeKeeper) commit(ctx context.Context, keys []string, retain time.Duration) error {
	for _, key := range keys {
		if err := k.s.Commit(ctx, key, retain); err != nil {
			return err
		}
	}
	return nil
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

type queueKeeper struct{ q dedupe.Queue }

func (k queueKeeper) claim(ctx context.Context, key string, e *event.Event, lease time.Duration) (dedupe.State, error) {
	return k.q.Enqueue(ctx, key, *e, lease)
}

// claimMany enqueues in one step where the queue can take many.
func (k queueKeeper) claimMany(ctx context.Context, keys []string, events []event.Event, lease time.Duration) ([]dedupe.State, []error) {
	if bq, ok := k.q.(dedupe.BatchQueue); ok {
		return bq.EnqueueMany(ctx, keys, events, lease)
	}
	sts, errs := make([]dedupe.State, len(keys)), make([]error, len(keys))
	for i, key := range keys {
		sts[i], errs[i] = k.q.Enqueue(ctx, key, events[i], lease)
	}
	return sts, errs
}

func (k queueKeeper) commit(ctx context.Context, keys []string, retain time.Duration) error {
	return k.q.CommitMany(ctx, keys, retain)
}

func (k queueKeeper) release(ctx context.Context, key string) error { return k.q.Release(ctx, key) }

func (k queueKeeper) bury(ctx context.Context, en *entry, f dedupe.Failure, retain time.Duration) error {
	return k.q.Bury(ctx, en.key, f, retain)
}

// giveBack keeps the events stored and ends this stream's claims, so that
// a restart or another replica delivers them at once.
func (k queueKeeper) giveBack(ctx context.Context, keys []string) error {
	return k.q.Extend(ctx, keys, 0)
}

func (queueKeeper) durable() bool { return true }
