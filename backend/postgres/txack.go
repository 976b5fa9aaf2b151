package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
// The ack of the last subscription that had not acked the event (as
// [dedupe.LastDelivery] tells) commits the event's key itself, in tx,
// rather than marking the subscription done; the row then says no more
// of the event, so a second ack of that delivery answers
// [dedupe.ErrNotHeld], not ErrAlreadyAcked. Both mean roll back.
//
// The row lock taken here lasts until tx ends: the transactional
// subscriptions of one event run one after the other, and an AckTx that
// waits for the lock holds its pool connection meanwhile.
//
// Call it early in the transaction (before the effect): it waits for
// nothing but the row, and an event already acked is then not handled a
// second time at all. [Backend.HandleTx] does all of this.
func (b *Backend) AckTx(ctx context.Context, tx pgx.Tx, d dedupe.Delivery) error {
	_, err := b.ackTx(ctx, tx, d)
	return err
}

// ackTx is AckTx, and says whether it committed the key (the last
// subscription's ack of a [dedupe.LastDelivery]).
func (b *Backend) ackTx(ctx context.Context, tx pgx.Tx, d dedupe.Delivery) (committedKey bool, err error) {
	if d == nil {
		return false, errors.New("postgres: AckTx with no delivery")
	}
	h, sub := hash(d.Key()), []byte(d.Subscription())
	var tag pgconn.CommandTag
	if retain, last := lastOf(d); last {
		tag, err = tx.Exec(ctx, b.q.ackTxCommit, h, b.holder, sub, micros(retain))
		committedKey = true
	} else {
		tag, err = tx.Exec(ctx, b.q.ackTx, h, b.holder, sub)
	}
	if err != nil {
		return false, fmt.Errorf("postgres: ack in transaction: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return committedKey, b.saveVersionTx(ctx, tx, d)
	}
	return false, b.whyNotAcked(ctx, tx, d)
}

// saveVersionTx records d's version in tx when its subscription skips
// stale versions ([dedupe.VersionedDelivery]).
func (b *Backend) saveVersionTx(ctx context.Context, tx pgx.Tx, d dedupe.Delivery) error {
	vd, ok := d.(dedupe.VersionedDelivery)
	if !ok {
		return nil
	}
	k, v, retain, ok := vd.Version()
	if !ok {
		return nil
	}
	if _, err := tx.Exec(ctx, b.q.saveVersion, vd.Subscription(), []byte(k), v, micros(retain)); err != nil {
		return fmt.Errorf("postgres: save version: %w", err)
	}
	return nil
}

// lastOf reports whether d is the last of its event's subscriptions to
// ack, and the key's retention then.
func lastOf(d dedupe.Delivery) (time.Duration, bool) {
	if l, ok := d.(dedupe.LastDelivery); ok {
		if retain, last := l.Last(); last && retain > 0 {
			return retain, true
		}
	}
	return 0, false
}

// whyNotAcked says why an ack wrote nothing: ErrAlreadyAcked when this
// holder holds the event and the subscription is done, else ErrNotHeld.
func (b *Backend) whyNotAcked(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, d dedupe.Delivery) error {
	h, sub := hash(d.Key()), []byte(d.Subscription())
	var acked bool
	err := q.QueryRow(ctx, b.q.ackTxWhy, h, b.holder, sub).Scan(&acked)
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
// each event in a transaction of its own on this backend's pool (size it
// for the handler's workers too): it begins and acks the delivery in the
// transaction ([Backend.AckTx]) in one round trip, calls fn, and commits. So fn's writes through tx happen once per event and
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
		// Begin and ack in one round trip: a batch that begins the
		// transaction and leaves it open.
		h, sub := hash(d.Key()), []byte(d.Subscription())
		retain, last := lastOf(d)
		batch := &pgx.Batch{}
		batch.BeginTx(pgx.TxOptions{})
		if last {
			batch.Queue(b.q.ackTxCommit, h, b.holder, sub, micros(retain))
		} else {
			batch.Queue(b.q.ackTx, h, b.holder, sub)
		}
		br := b.pool.SendBatch(ctx, batch)
		tx := br.Tx()
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
		_, err := br.Exec()
		var tag pgconn.CommandTag
		if err == nil {
			tag, err = br.Exec()
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return unreachable(fmt.Errorf("postgres: begin and ack: %w", err))
		}
		if tag.RowsAffected() != 1 {
			if err := b.whyNotAcked(ctx, tx, d); !errors.Is(err, dedupe.ErrAlreadyAcked) {
				return err
			}
			return nil // done by a transaction that committed: ack
		}
		committedKey := last
		if err := fn(ctx, tx, e); err != nil {
			return err
		}
		if err := b.saveVersionTx(ctx, tx, d); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("postgres: commit: %w", err)
		}
		if committedKey {
			d.(dedupe.LastDelivery).Committed()
		}
		return nil
	}
}

// ackFailed marks the error of a batch's ack that wrote nothing.
const ackFailed = "intake: ack not written"

// HandleBatch returns a function for [intake.Stream.Handle] for handlers
// whose writes need no answer back: fn queues its statements on batch,
// and HandleBatch queues the delivery's ack after them (fenced as
// [Backend.AckTx]) and sends the whole batch at once. pgx runs a batch in
// one implicit transaction, so the writes and the ack commit together or
// not at all, in one round trip to the server: the cheapest way to have
// an effect happen once. If the ack cannot be written, the batch rolls
// back: when a committed transaction acked the event for this
// subscription before, the call returns nil (the event is acked);
// when another holder took it over, an error wrapping
// [dedupe.ErrNotHeld]. An error of fn or of one of its statements rolls
// back too, and the event is retried as with any handler.
//
// [intake.Stream.Handle]: https://pkg.go.dev/github.com/intakehq/intake#Stream.Handle
func (b *Backend) HandleBatch(fn func(ctx context.Context, e event.Event, batch *pgx.Batch) error) func(context.Context, event.Event) error {
	if fn == nil {
		panic("postgres: HandleBatch with a nil function")
	}
	return func(ctx context.Context, e event.Event) error {
		d, ok := dedupe.DeliveryFromContext(ctx)
		if !ok {
			return errors.New("postgres: a HandleBatch function runs only under Stream.Handle (its context carries the delivery)")
		}
		batch := &pgx.Batch{}
		if err := fn(ctx, e, batch); err != nil {
			return err
		}
		h, sub := hash(d.Key()), []byte(d.Subscription())
		retain, last := lastOf(d)
		if last {
			batch.Queue(b.q.ackBatchCommit, h, b.holder, sub, micros(retain))
		} else {
			batch.Queue(b.q.ackBatch, h, b.holder, sub)
		}
		err := b.pool.SendBatch(ctx, batch).Close()
		if err == nil {
			if last {
				d.(dedupe.LastDelivery).Committed()
			}
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || !strings.Contains(pgErr.Message, ackFailed) {
			return err
		}
		// Rolled back: find out why, now that it is over.
		if err := b.whyNotAcked(ctx, b.pool, d); !errors.Is(err, dedupe.ErrAlreadyAcked) {
			return err
		}
		return nil // done by a transaction that committed: ack
	}
}

// TxBatchLinger is how long a batch of [Backend.HandleTxBatch] waits at
// most for more deliveries before it commits what it has.
const TxBatchLinger = 2 * time.Millisecond

// HandleTxBatch returns a function for [intake.Stream.Handle] that
// handles the deliveries its workers bring at once in one transaction:
// up to max events (give the subscription at least max workers), taken
// as they are ready, waiting at most [TxBatchLinger] for a batch to
// fill. The transaction begins and acks every delivery of the batch
// ([Backend.AckTx], fenced per event) in one round trip, calls fn with
// the events not acked already, and commits: fn's writes and the acks
// commit together, once per event and subscription, whatever crashes,
// at one transaction (one commit, one fsync) for the batch.
//
// An event acked by a transaction that committed before is left out of
// fn's events (and acked); one another holder took over is left out and
// let go ([dedupe.ErrNotHeld]). When fn or the commit fails, the batch is
// split in two and each half tried in a transaction of its own, down to
// single events: one poison event fails alone, with its own attempts,
// and is dead-lettered on its own, while its neighbours commit without
// spending theirs.
//
// [intake.Stream.Handle]: https://pkg.go.dev/github.com/intakehq/intake#Stream.Handle
func (b *Backend) HandleTxBatch(max int, fn func(ctx context.Context, tx pgx.Tx, events []event.Event) error) func(context.Context, event.Event) error {
	if fn == nil || max < 1 {
		panic(fmt.Sprintf("postgres: HandleTxBatch(%d) with a nil function or a batch under 1", max))
	}
	tb := dedupe.NewTxBatch(max, TxBatchLinger, func(ctx context.Context, items []*dedupe.TxItem) error {
		batch := &pgx.Batch{}
		batch.BeginTx(pgx.TxOptions{})
		last := make([]bool, len(items))
		for i, it := range items {
			h, sub := hash(it.Delivery.Key()), []byte(it.Delivery.Subscription())
			var retain time.Duration
			if retain, last[i] = lastOf(it.Delivery); last[i] {
				batch.Queue(b.q.ackTxCommit, h, b.holder, sub, micros(retain))
			} else {
				batch.Queue(b.q.ackTx, h, b.holder, sub)
			}
		}
		br := b.pool.SendBatch(ctx, batch)
		tx := br.Tx()
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
		_, err := br.Exec()
		acked := make([]bool, len(items))
		for i := range items {
			if err != nil {
				break
			}
			var tag pgconn.CommandTag
			tag, err = br.Exec()
			acked[i] = tag.RowsAffected() == 1
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return unreachable(fmt.Errorf("postgres: begin and ack: %w", err))
		}
		var events []event.Event
		for i, it := range items {
			if !acked[i] {
				it.Settle(ignoreAcked(b.whyNotAcked(ctx, tx, it.Delivery)))
				continue
			}
			events = append(events, it.Event)
		}
		if len(events) == 0 {
			return nil
		}
		if err := fn(ctx, tx, events); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("postgres: commit: %w", err)
		}
		for i, it := range items {
			if acked[i] && last[i] {
				it.Delivery.(dedupe.LastDelivery).Committed()
			}
		}
		return nil
	})
	return func(ctx context.Context, e event.Event) error {
		d, ok := dedupe.DeliveryFromContext(ctx)
		if !ok {
			return errors.New("postgres: a HandleTxBatch function runs only under Stream.Handle (its context carries the delivery)")
		}
		return tb.Handle(ctx, e, d)
	}
}

// ignoreAcked is nil for an error that says the delivery was acked by a
// transaction that committed: the delivery is done.
func ignoreAcked(err error) error {
	if errors.Is(err, dedupe.ErrAlreadyAcked) {
		return nil
	}
	return err
}

// unreachable marks an error that is not the server's answer (a
// connection refused, reset or cut) as an infrastructure failure: the
// stream retries the event without spending one of its attempts
// (intake.Infrastructure). An error the server answered with, or the
// context's end, is left as it is.
func unreachable(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return event.WithClass(err, event.Infrastructure)
}
