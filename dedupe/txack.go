package dedupe

import (
	"context"
	"errors"
	"time"
)

// Transactional acks: a backend whose events live in the same SQL
// database as the user's data (Postgres, SQLite) lets a handler mark its
// delivery done inside its own transaction, so that the handler's effect
// and the ack commit together or not at all. The function users call is
// the backend's (its transaction type is the driver's); what it needs of
// a delivery is below, and what the stream learns from it travels in
// [Stored.Done] (adoption skips what is done) and in these errors.

// ErrNotHeld is returned by a transactional ack when this holder no
// longer holds the event: another holder adopted it (this process was
// paused, or lost its database session, long enough to be taken for
// dead), or it was committed or discarded meanwhile. The caller's
// transaction must roll back: the event's effect belongs to the holder
// that has it now. A handler that returns an error wrapping ErrNotHeld
// (or a Nack given one) makes the stream let go of the event without
// committing, burying or retrying it.
var ErrNotHeld = errors.New("dedupe: the event is no longer held by this holder; roll back")

// ErrAlreadyAcked is returned by a transactional ack when a transaction
// that committed earlier already acked this delivery's event for this
// subscription: its effect happened. The caller's transaction must roll
// back (so the effect does not happen twice), and the delivery be acked.
var ErrAlreadyAcked = errors.New("dedupe: the event was already acked for this subscription by a committed transaction")

// Delivery names what a transactional ack marks done: one event, by its
// key, for one subscription. *intake.Delivery implements it, and the
// context of an intake Handle function's call carries it
// ([DeliveryFromContext]).
type Delivery interface {
	Key() string          // the event's idempotency key
	Subscription() string // the name of the subscription it was delivered to
}

type deliveryKey struct{}

// ContextWithDelivery returns a context that carries d: the stream gives
// one to every Handle function's call.
func ContextWithDelivery(ctx context.Context, d Delivery) context.Context {
	return context.WithValue(ctx, deliveryKey{}, d)
}

// DeliveryFromContext returns the delivery a Handle function's context
// carries, if any.
func DeliveryFromContext(ctx context.Context) (Delivery, bool) {
	d, ok := ctx.Value(deliveryKey{}).(Delivery)
	return d, ok
}

// LastDelivery is a [Delivery] that knows whether it is the last of its
// event's subscriptions to ack (*intake.Delivery is one). A transactional
// ack of the last one commits the event's key itself, in the caller's
// transaction, for the retention Last returns, instead of marking the
// subscription done; the backend's wrapper (HandleTx) calls Committed
// once that transaction has committed, and the stream then does not
// commit the key a second time. A caller that does not call Committed
// costs the stream one more commit of the key, nothing else.
type LastDelivery interface {
	Delivery
	// Last reports whether every other subscription of the event has
	// acked it (none gave up on it), and the retention of its key.
	Last() (retain time.Duration, last bool)
	// Committed says that a transaction committed the event's key.
	Committed()
}
