package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// AckTx acks d inside tx, a transaction on this backend's database: the
// subscription is marked done for the event's key by tx, so that the
// handler's own writes in tx and the ack commit together or not at all.
// Once tx commits, the event is not delivered to that subscription again,
// whatever crashes (a replica that adopts the event skips it), and a
// rollback undoes the ack with the rest. Ack (or return nil from the
// Handle function) after the commit as usual: the stream commits the key
// when every subscription has.
//
// The mark is fenced: it is written only while this Backend (this
// holder) still holds the event, and it locks the event's row until tx
// ends, so no other holder can adopt the event meanwhile. If another
// holder took the event over (this process paused, or lost its session,
// long enough to be taken for dead), AckTx returns an error wrapping
// [dedupe.ErrNotHeld]: roll back, and return the error (or Nack with it),
// and the stream lets go of the event. If a transaction that committed
// before already acked it for this subscription, AckTx returns
// [dedupe.ErrAlreadyAcked]: roll back and ack.
//
// Call it early in the transaction (before the effect): it waits for
// nothing but the row, and an event already acked is then not handled a
// second time at all. [Backend.HandleTx] does all of this.
func (b *Backend) AckTx(ctx context.Context, tx pgx.Tx, d dedupe.Delivery) error {
	if d == nil {
		return errors.New("postgres: AckTx with no delivery")
	}
	h, sub := hash(d.Key()), []byte(d.Subscription())
	tag, err := tx.Exec(ctx, b.q.ackTx, h, b.holder, sub)
	if err != nil {
		return fmt.Errorf("postgres: ack in transaction: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var acked bool
	err = tx.QueryRow(ctx, b.q.ackTxWhy, h, b.holder, sub).Scan(&acked)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return fmt.Errorf("postgres: ack in transaction: %w", err)
	case acked:
		return fmt.Errorf("postgres: event %.80q, subscription %q: %w", d.Key(), d.Subscription(), dedupe.ErrAlreadyAcked)
	}
	return fmt.Errorf("postgres: event %.80q, subscription %q: %w", d.Key(), d.Subscription(), dedupe.ErrNotHeld)
}

// HandleTx returns a function for [intake.Stream.Handle] that handles
// each event in a transaction of its own on this backend's pool: it
// begins, acks the delivery in the transaction ([Backend.AckTx]), calls
// fn, and commits. So fn's writes through tx happen once per event and
// subscription, whatever crashes: an event already acked is not passed to
// fn again, and a transaction that cannot commit leaves the event to be
// retried. fn returning an error (or panicking) rolls back; the event is
// retried with the subscription's backoff and dead-lettered after its
// attempts, as with any handler. If another holder took the event over,
// the transaction rolls back and the stream lets go of the event.
//
// [intake.Stream.Handle]: https://pkg.go.dev/github.com/intakehq/intake#Stream.Handle
func (b *Backend) HandleTx(fn func(ctx context.Context, tx pgx.Tx, e event.Event) error) func(context.Context, event.Event) error {
	if fn == nil {
		panic("postgres: HandleTx with a nil function")
	}
	return func(ctx context.Context, e event.Event) error {
		d, ok := dedupe.DeliveryFromContext(ctx)
		if !ok {
			return errors.New("postgres: a HandleTx function runs only under Stream.Handle (its context carries the delivery)")
		}
		tx, err := b.pool.Begin(ctx)
		if err != nil {
			return fmt.Errorf("postgres: begin: %w", err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
		switch err := b.AckTx(ctx, tx, d); {
		case errors.Is(err, dedupe.ErrAlreadyAcked):
			return nil // done by a transaction that committed: ack
		case err != nil:
			return err
		}
		if err := fn(ctx, tx, e); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("postgres: commit: %w", err)
		}
		return nil
	}
}
