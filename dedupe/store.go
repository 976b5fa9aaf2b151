// Package dedupe holds the idempotency store that makes intake deliver each
// event once, whichever path it came by, and the in-memory implementation
// used by default.
//
// A key goes through three states: absent, pending (claimed, with a lease)
// and done (committed, remembered for a retention window). The stream claims
// a key before it queues an event, commits it once every subscription has
// acknowledged the event, and releases it if the event could not be queued
// or was not delivered.
//
// Durable and shared stores (SQLite, Postgres, Redis) live in their own
// modules; each passes the conformance suite in [dedupetest].
package dedupe

import (
	"context"
	"errors"
	"time"
)

// State is the answer of a claim ([Store.Claim], [Queue.Enqueue]):
// claimed, pending or done. (Not to be confused with [RecordState], the
// state of an event an [Inspector] lists.)
type State uint8

const (
	// Claimed means the caller now holds the key: it was absent, or its
	// pending lease had expired.
	Claimed State = iota + 1
	// Pending means another claim holds the key and its lease has not
	// expired.
	Pending
	// Done means the key was committed and its retention has not expired.
	Done
)

// String returns "claimed", "pending", "done" or "unknown".
func (s State) String() string {
	switch s {
	case Claimed:
		return "claimed"
	case Pending:
		return "pending"
	case Done:
		return "done"
	}
	return "unknown"
}

// Store is an idempotency store. Implementations must be safe for
// concurrent use, and Claim must be atomic across every goroutine, process
// and replica that shares the store: of any number of concurrent claims of
// an absent key, exactly one gets [Claimed].
type Store interface {
	// Claim marks key pending for lease if it is absent (or its previous
	// claim or retention expired) and returns Claimed; otherwise it returns
	// Pending or Done and changes nothing.
	Claim(ctx context.Context, key string, lease time.Duration) (State, error)
	// Commit marks key done for retain. Committing a key that is not pending
	// still marks it done.
	Commit(ctx context.Context, key string, retain time.Duration) error
	// Release forgets a pending key so that the next claim wins. Releasing a
	// done or absent key changes nothing and is not an error.
	Release(ctx context.Context, key string) error
}

// ErrInvalidDuration is returned, wrapped, when a lease or retention is not
// positive.
var ErrInvalidDuration = errors.New("dedupe: lease and retention must be positive")

// DoneLookup is a [Store] (or [Queue]) that tells, without claiming it,
// whether a key is done (handled and committed) and until when its mark
// is kept: what lets the console say that an event was handled rather
// than "not here". Memory and the Postgres and SQLite backends implement
// it; the suite [github.com/intakehq/intake/dedupe/dedupetest.Run] checks
// it when a store has it.
type DoneLookup interface {
	// DoneUntil returns the end of key's done mark and true when key is
	// done now; the zero time and false when it is absent, pending, dead,
	// or its mark has ended.
	DoneUntil(ctx context.Context, key string) (time.Time, bool, error)
}
