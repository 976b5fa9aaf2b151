package dedupe

import (
	"context"
	"time"

	"github.com/intakehq/intake/event"
)

// Queue is a durable queue with the idempotency store built in, provided by
// a backend module (SQLite, Postgres). It claims an event's key and stores
// the event in one atomic step, so that no crash between the two can mark
// an event seen without keeping it, and it keeps the event until CommitMany
// or Release. With a Queue, a stream survives kill -9: what was
// acknowledged to a source and not yet acked by every subscription is
// delivered again after a restart, or by another replica sharing the queue.
//
// Each Queue value is one holder: claims it makes or adopts are its own,
// and Extend renews only those. Implementations must be safe for
// concurrent use, keep events byte-exact (see [event.Event.MarshalBinary])
// and refuse an event they cannot keep with an error wrapping
// [event.ErrInvalid], never one a caller would retry. The suite
// [github.com/intakehq/intake/dedupe/dedupetest.RunQueue] checks all of
// this against a real server.
type Queue interface {
	// Enqueue claims key for lease and stores e under it, atomically, if
	// the key is absent, its retention (or a claim without an event) has
	// expired, or it is dead, and returns Claimed. Otherwise it stores
	// nothing and returns Pending or Done. A dead key is claimed anew with
	// its attempts reset, and e replaces what it held (the same event, by
	// its key): a provider's resend of a dead event is delivered again. A
	// key whose claim expired while it still holds an event is Pending:
	// that event is adopted (with an attempt counted), not replaced.
	Enqueue(ctx context.Context, key string, e event.Event, lease time.Duration) (State, error)

	// Adopt claims for lease up to n stored events whose claim has expired
	// (their holder crashed, or gave them back with Extend), oldest first,
	// and returns them. An event whose holder crashed counts one more
	// attempt (Stored.Attempts), so that an event that kills every process
	// that takes it still runs out of attempts; one given back does not.
	// A [Starter] counts it only if the crashed holder had started it.
	Adopt(ctx context.Context, n int, lease time.Duration) ([]Stored, error)

	// Extend renews this holder's claims on keys for lease. A lease of zero
	// gives them back: they stay stored and can be adopted at once, without
	// an attempt counted.
	Extend(ctx context.Context, keys []string, lease time.Duration) error

	// Bury marks key dead with f instead of done: its event stays stored,
	// with f, for retain, and is not adopted; see [Inspector] to replay or
	// discard it, and Enqueue for a new arrival of its key.
	Bury(ctx context.Context, key string, f Failure, retain time.Duration) error

	// CommitMany marks every key done for retain and deletes their stored
	// events, in one step where the backend can.
	CommitMany(ctx context.Context, keys []string, retain time.Duration) error

	// Release deletes key's claim and stored event, as if never enqueued.
	Release(ctx context.Context, key string) error

	// Inspector lists, reads, replays and discards what the queue holds.
	Inspector
}

// BatchQueue is a [Queue] that can take many events in one step: the
// stream uses it for [event.BatchSink] puts (a poller's page). Each event
// is answered as Enqueue would answer it.
type BatchQueue interface {
	Queue
	EnqueueMany(ctx context.Context, keys []string, events []event.Event, lease time.Duration) ([]State, []error)
}

// Stored is an event kept by a [Queue], with its idempotency key and the
// attempts counted so far.
type Stored struct {
	Key      string
	Event    event.Event
	Attempts int
	// Done names the subscriptions that already acked the event in a
	// committed transaction (a backend's transactional ack): the stream
	// does not deliver it to them again. Queues without transactional
	// acks leave it empty.
	Done []string
	// Crashed says its holder stopped without giving it back (a crash),
	// rather than gave it back: a [Starter] queue sets it, and the stream
	// marks such an event started before it first hands it to a handler.
	Crashed bool
}

// Starter is a [Queue] that counts a crash only against the events whose
// delivery had begun, so that a crash loop never buries a backlog that was
// never handed to a handler. Start marks this holder's claims on keys as
// started, durably, before it returns; Adopt then counts an attempt for an
// event whose holder stopped without giving it back only if that holder
// had started it, and clears the mark. A key this holder does not hold is
// left alone. The stream starts each event adopted from a crashed holder
// ([Stored].Crashed) before it first hands it to a handler; events this
// holder enqueued itself, or adopted from one that gave them back, are
// not started, so the path without crashes writes nothing more, and an
// event that kills every process that takes it runs out of attempts one
// crash later than its maximum.
type Starter interface {
	Queue
	Start(ctx context.Context, keys []string) error
}

// Waker is a [Queue] that can tell its holder when there may be events to
// adopt before the holder's next look: another holder gave events back or
// closed, or an operator replayed one. The channel receives at most one
// pending signal; a holder that gets it adopts at once. A holder that
// crashed sends nothing: its events are found by the regular look (every
// second in the stream).
type Waker interface {
	AdoptReady() <-chan struct{}
}
