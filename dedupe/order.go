package dedupe

import (
	"context"
	"time"
)

// Head is a stored event waiting for its subscriptions, as [Orderer]
// lists it: its idempotency key, and its source and type, so that a
// subscription can tell an event it does not take.
type Head struct {
	Key, Source, Type string
}

// Orderer is a [Queue] that keeps events in order per order key (the
// event's Meta[event.MetaOrder]) across every holder sharing it, so that
// a stream's ordered subscriptions hand out an order key's events one at
// a time, in stored order, whichever replica holds them.
//
// Heads returns, for each order key, up to n of its stored events that
// are pending (held, given back or waiting for adoption; not dead, not
// committed), in the order they were stored. That order must be total
// per order key and agree with what every holder can see: an event
// stored after another holder's Heads answered may not come before any
// event in that answer. A stream hands a key's event to an ordered
// subscription only when every event stored before it is done there.
// The suite github.com/intakehq/intake/intaketest.RunOrdered checks it
// through a stream (two replicas on Postgres).
type Orderer interface {
	Queue
	Heads(ctx context.Context, orderKeys []string, n int) (map[string][]Head, error)
}

// VersionedDelivery is a [Delivery] of a subscription that skips stale
// versions (intake.WithSkipStale; *intake.Delivery is one). A backend's
// transactional ack records the version in the caller's transaction
// ([Versions].SaveVersion's rule), so that the effect, the ack and the
// version applied commit together: a crash can then neither lose the
// version of an applied effect nor replay an older event over it.
type VersionedDelivery interface {
	Delivery
	// Version returns the event's order key and version, and the
	// retention to keep it for; ok is false when the subscription records
	// none for this event.
	Version() (orderKey string, v int64, retain time.Duration, ok bool)
}

// Versions keeps the last version a subscription applied per order key,
// so that an event older than what was applied can be skipped (see
// intake.WithSkipStale) on every replica and after a restart. A queue
// that implements it keeps the versions beside its events.
type Versions interface {
	// LastVersions returns the recorded version of each order key that
	// has one, for subscription sub.
	LastVersions(ctx context.Context, sub string, orderKeys []string) (map[string]int64, error)
	// SaveVersion records v for (sub, orderKey) unless a greater version
	// is recorded, and keeps it for retain after its last save.
	SaveVersion(ctx context.Context, sub, orderKey string, v int64, retain time.Duration) error
}
