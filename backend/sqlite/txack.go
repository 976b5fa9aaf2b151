package sqlite

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// decodeDone reads the done column: each subscription as |hex(name)|.
func decodeDone(s string) []string {
	var out []string
	for _, h := range strings.Split(s, "|") {
		if h == "" {
			continue
		}
		if name, err := hex.DecodeString(h); err == nil {
			out = append(out, string(name))
		}
	}
	return out
}

// AckTx acks d inside tx, a transaction on this backend's database file
// (the [sql.DB] given to [New], or [Backend.DB]): the subscription is
// marked done for the event's key by tx, so that the handler's own writes
// in tx and the ack commit together or not at all. Once tx commits, the
// event is not delivered to that subscription again, whatever crashes,
// and a rollback undoes the ack with the rest. Ack (or return nil from
// the Handle function) after the commit as usual.
//
// The mark is fenced: it is written only while this Backend (this
// holder) still holds the event. If another holder took it over, AckTx
// returns an error wrapping [dedupe.ErrNotHeld]: roll back and return
// the error (or Nack with it), and the stream lets go of the event. If a
// transaction that committed before already acked it for this
// subscription, AckTx returns [dedupe.ErrAlreadyAcked]: roll back and
// ack.
//
// Call it first in the transaction: it is a write, and SQLite lets a
// transaction that has read already fail to start writing when another
// connection wrote meanwhile. The transaction holds SQLite's one write
// lock until it ends, so keep it short: the stream's own writes wait for
// it. [Backend.HandleTx] does all of this.
func (b *Backend) AckTx(ctx context.Context, tx *sql.Tx, d dedupe.Delivery) error {
	_, err := b.ackTx(ctx, tx, d)
	return err
}

// ackTx is AckTx, and says whether it committed the key: the last
// subscription's ack of a [dedupe.LastDelivery] commits it, for its
// retention, instead of marking the subscription done.
func (b *Backend) ackTx(ctx context.Context, tx *sql.Tx, d dedupe.Delivery) (committedKey bool, err error) {
	if d == nil {
		return false, errors.New("sqlite: AckTx with no delivery")
	}
	key, sub := []byte(d.Key()), []byte(d.Subscription())
	const fence = ` WHERE key = ?1 AND holder = ?2 AND state = 1 AND seq IS NOT NULL
		AND instr(coalesce(done, '|'), '|' || hex(?3) || '|') = 0`
	var res sql.Result
	if l, ok := d.(dedupe.LastDelivery); ok {
		if retain, last := l.Last(); last && retain > 0 {
			committedKey = true
			res, err = tx.ExecContext(ctx, `UPDATE `+b.t.keys+` SET state = 2, expires_at = ?4, holder = NULL, seq = NULL,
				event = NULL, source = NULL, type = NULL, attempts = 0, failure = NULL, done = NULL, started = 0, ordkey = NULL`+fence,
				key, b.holder, sub, b.now().UnixNano()+int64(retain))
		}
	}
	if !committedKey {
		res, err = tx.ExecContext(ctx, `UPDATE `+b.t.keys+` SET done = coalesce(done, '|') || hex(?3) || '|'`+fence, key, b.holder, sub)
	}
	if err != nil {
		return false, fmt.Errorf("sqlite: ack in transaction: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return false, fmt.Errorf("sqlite: ack in transaction: %w", err)
	} else if n == 1 {
		return committedKey, b.saveVersionTx(ctx, tx, d)
	}
	return false, b.whyNotAcked(ctx, tx, d)
}

// saveVersionTx records d's version in tx when its subscription skips
// stale versions ([dedupe.VersionedDelivery]).
func (b *Backend) saveVersionTx(ctx context.Context, tx *sql.Tx, d dedupe.Delivery) error {
	vd, ok := d.(dedupe.VersionedDelivery)
	if !ok {
		return nil
	}
	k, v, retain, ok := vd.Version()
	if !ok {
		return nil
	}
	now := b.now().UnixNano()
	if _, err := tx.ExecContext(ctx, saveVersionSQL(b.t.versions), vd.Subscription(), []byte(k), v, now+int64(retain), now); err != nil {
		return fmt.Errorf("sqlite: save version: %w", err)
	}
	return nil
}

// whyNotAcked says why an ack wrote nothing: ErrAlreadyAcked when this
// holder holds the event and the subscription is done, else ErrNotHeld.
func (b *Backend) whyNotAcked(ctx context.Context, tx *sql.Tx, d dedupe.Delivery) error {
	key, sub := []byte(d.Key()), []byte(d.Subscription())
	var acked bool
	err := tx.QueryRowContext(ctx, `SELECT coalesce(holder = ?2 AND state = 1 AND seq IS NOT NULL
		AND instr(coalesce(done, '|'), '|' || hex(?3) || '|') > 0, 0) FROM `+b.t.keys+` WHERE key = ?1`, key, b.holder, sub).Scan(&acked)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fmt.Errorf("sqlite: ack in transaction: %w", err)
	case acked:
		return fmt.Errorf("sqlite: event %.80q, subscription %q: %w", d.Key(), d.Subscription(), dedupe.ErrAlreadyAcked)
	}
	return fmt.Errorf("sqlite: event %.80q, subscription %q: %w", d.Key(), d.Subscription(), dedupe.ErrNotHeld)
}

// DB returns the database the backend keeps its tables in: open the
// transactions of [Backend.AckTx] on it.
func (b *Backend) DB() *sql.DB { return b.db }

// HandleTx returns a function for [intake.Stream.Handle] that handles
// each event in a transaction on the backend's database: it acks the
// delivery in the transaction ([Backend.AckTx]), calls fn, and commits.
// The transaction is the backend's writer's, shared with the writes
// waiting beside it (one sync for all; SQLite has one writer anyway): fn
// must not call the backend, and should keep to the database, since every
// write of the backend waits while it runs. If another write of the group
// fails, fn runs again in a transaction of its own. So fn's writes
// through tx happen once per event and subscription, whatever crashes: an
// event already acked is not passed to fn again. fn returning an error (or panicking) rolls back; the event is
// retried with the subscription's backoff and dead-lettered after its
// attempts, as with any handler.
//
// [intake.Stream.Handle]: https://pkg.go.dev/github.com/intakehq/intake#Stream.Handle
func (b *Backend) HandleTx(fn func(ctx context.Context, tx *sql.Tx, e event.Event) error) func(context.Context, event.Event) error {
	if fn == nil {
		panic("sqlite: HandleTx with a nil function")
	}
	return func(ctx context.Context, e event.Event) error {
		d, ok := dedupe.DeliveryFromContext(ctx)
		if !ok {
			return errors.New("sqlite: a HandleTx function runs only under Stream.Handle (its context carries the delivery)")
		}
		// One write of the backend's writer, in the group transaction of
		// the writes waiting beside it (see HandleTxBatch).
		var ran, acked, committedKey bool
		err := b.exec(ctx, func(tx *sql.Tx, _ int64) error {
			ran, acked = true, false
			var err error
			committedKey, err = b.ackTx(ctx, tx, d)
			switch {
			case errors.Is(err, dedupe.ErrAlreadyAcked):
				acked = true // done by a transaction that committed
				return nil
			case err != nil:
				return err
			}
			return safely(func() error { return fn(ctx, tx, e) })
		})
		switch {
		case err != nil && !ran && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
			return event.WithClass(fmt.Errorf("sqlite: begin: %w", err), event.Infrastructure) // the file, not the event: no attempt spent
		case err != nil:
			return err
		case !acked && committedKey:
			d.(dedupe.LastDelivery).Committed()
		}
		return nil
	}
}

// safely runs a handler's fn on the backend's writer goroutine: a panic
// is the handler's error (its transaction rolled back, the event
// retried), as it would be in the stream's worker, not the writer's end.
func safely(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sqlite: handler panicked: %v", r)
		}
	}()
	return fn()
}

// errAcked marks an item of a batch acked already by a transaction that
// committed: settled as done, not passed to fn.
var errAcked = errors.New("acked already")

// TxBatchLinger is how long a batch of [Backend.HandleTxBatch] waits at
// most for more deliveries before it commits what it has.
const TxBatchLinger = 2 * time.Millisecond

// HandleTxBatch returns a function for [intake.Stream.Handle] that
// handles the deliveries its workers bring at once in one transaction,
// as [Backend.HandleTx] does one: up to max events (give the
// subscription at least max workers), waiting at most [TxBatchLinger]
// for a batch to fill. Each delivery is acked in the transaction (fenced
// per event); fn gets the events not acked already; one commit for the
// batch. When fn or the commit fails, the batch is split in two and each
// half tried on its own, down to single events: a poison event fails
// alone and its neighbours commit without spending an attempt. As with
// HandleTx, the transaction is the backend's writer's: fn must not call
// the backend, and every write waits while it runs.
//
// [intake.Stream.Handle]: https://pkg.go.dev/github.com/intakehq/intake#Stream.Handle
func (b *Backend) HandleTxBatch(max int, fn func(ctx context.Context, tx *sql.Tx, events []event.Event) error) func(context.Context, event.Event) error {
	if fn == nil || max < 1 {
		panic(fmt.Sprintf("sqlite: HandleTxBatch(%d) with a nil function or a batch under 1", max))
	}
	tb := dedupe.NewTxBatch(max, TxBatchLinger, func(ctx context.Context, items []*dedupe.TxItem) error {
		// The batch is one write of the backend's writer: it shares the
		// group transaction (and its one sync) with the enqueues and
		// commits waiting beside it, instead of contending with them for
		// the database's lock. If the group fails, the writer runs each
		// write again alone, so what the batch learns is kept only from
		// the run that committed.
		var (
			settled   []error // per item: nil to run, else how it was settled
			committed []bool
		)
		err := b.exec(ctx, func(tx *sql.Tx, _ int64) error {
			settled, committed = make([]error, len(items)), make([]bool, len(items))
			var events []event.Event
			for i, it := range items {
				c, err := b.ackTx(ctx, tx, it.Delivery)
				switch {
				case errors.Is(err, dedupe.ErrAlreadyAcked):
					settled[i] = errAcked
				case errors.Is(err, dedupe.ErrNotHeld):
					settled[i] = err
				case err != nil:
					return err
				default:
					committed[i] = c
					events = append(events, it.Event)
				}
			}
			if len(events) == 0 {
				return nil
			}
			return safely(func() error { return fn(ctx, tx, events) })
		})
		if err != nil {
			if settled == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				// The writer never ran the batch: the file, not the events.
				return event.WithClass(fmt.Errorf("sqlite: batch: %w", err), event.Infrastructure)
			}
			return err
		}
		for i, it := range items {
			switch {
			case settled[i] == errAcked:
				it.Settle(nil)
			case settled[i] != nil:
				it.Settle(settled[i])
			case committed[i]:
				it.Delivery.(dedupe.LastDelivery).Committed()
			}
		}
		return nil
	})
	return func(ctx context.Context, e event.Event) error {
		d, ok := dedupe.DeliveryFromContext(ctx)
		if !ok {
			return errors.New("sqlite: a HandleTxBatch function runs only under Stream.Handle (its context carries the delivery)")
		}
		return tb.Handle(ctx, e, d)
	}
}
