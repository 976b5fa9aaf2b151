package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
)

func TestTxAckConformance(t *testing.T) {
	pool := testPool(t)
	dedupetest.RunTxAck(t, func(t *testing.T) func() dedupe.Queue {
		prefix := testPrefix(t, pool)
		return func() dedupe.Queue { return newBackend(t, pool, prefix) }
	}, func(ctx context.Context, q dedupe.Queue, d dedupe.Delivery, commit bool) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck
		if err := q.(*postgres.Backend).AckTx(ctx, tx, d); err != nil {
			return err
		}
		if commit {
			return tx.Commit(ctx)
		}
		return nil
	})
}

type delivery struct{ key, sub string }

func (d delivery) Key() string          { return d.key }
func (d delivery) Subscription() string { return d.sub }

// An open transaction that acked an event keeps it from adoption, even
// once its holder is gone; committed, the adopter gets it with the
// subscription done.
func TestAckTxHoldsTheEventUntilItEnds(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	ctx := context.Background()
	a, b := newBackend(t, pool, prefix), newBackend(t, pool, prefix)
	k := event.Key("api", "locked")
	if st, err := a.Enqueue(ctx, k, event.Event{Source: "api", ID: "locked"}, time.Hour); err != nil || st != dedupe.Claimed {
		t.Fatal(st, err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if err := a.AckTx(ctx, tx, delivery{k, "x"}); err != nil {
		t.Fatal(err)
	}
	_ = a.Close() // the holder is gone, its transaction still open
	if got, err := b.Adopt(ctx, 10, time.Hour); err != nil || len(got) != 0 {
		t.Fatalf("adopted %v (%v) while an ack's transaction was open", got, err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := b.Adopt(ctx, 10, time.Hour)
	if err != nil || len(got) != 1 || len(got[0].Done) != 1 || got[0].Done[0] != "x" {
		t.Fatalf("adopted %+v (%v), want the event with x done", got, err)
	}
}

// userTable makes the handler's own table, one row per event it handled.
func userTable(t *testing.T, pool *pgxpool.Pool, prefix string) string {
	t.Helper()
	name := prefix + "orders"
	if _, err := pool.Exec(context.Background(), `CREATE TABLE `+name+` (id text NOT NULL, by text NOT NULL, at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+name) })
	return name
}

// rowsPerID counts the user table's rows by event id.
func rowsPerID(t *testing.T, pool *pgxpool.Pool, table string) map[string]int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id, count(*) FROM `+table+` GROUP BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct {
		id string
		n  int
	}, error) {
		var v struct {
			id string
			n  int
		}
		return v, r.Scan(&v.id, &v.n)
	})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	for _, v := range got {
		m[v.id] = v.n
	}
	return m
}

// HandleTx under retries and dead letters: a failure after the insert
// rolls it back, Attempt works inside, two subscriptions write once each.
func TestHandleTxRetriesAndDeadLetters(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	table := userTable(t, pool, prefix)
	pg := newBackend(t, pool, prefix)
	intaketest.TxRetries(t, pg, func(after func(context.Context, event.Event) error) intake.HandlerFunc {
		return pg.HandleTx(func(ctx context.Context, tx pgx.Tx, e event.Event) error {
			_, sub := intake.Attempt(ctx)
			if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (id, by) VALUES ($1, $2)`, e.ID, sub); err != nil {
				return err
			}
			return after(ctx, e)
		})
	}, func() map[string]int { return rowsPerID(t, pool, table) })
}

// The fence: a holder that lost its advisory lock (its connection cut)
// while a handler was about to write has its event adopted by another
// replica, which handles it; the first holder's transactional ack then
// fails with ErrNotHeld, its transaction rolls back, and its stream lets
// go of the event: one row.
func TestAckTxFencesAHolderTakenOver(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	table := userTable(t, pool, prefix)
	ctx := context.Background()
	pa, pb := newBackend(t, pool, prefix), newBackend(t, pool, prefix)
	var fenced atomic.Int32
	write := func(pg *postgres.Backend, gate <-chan struct{}) intake.HandlerFunc {
		return func(ctx context.Context, e event.Event) error {
			if gate != nil {
				<-gate // paused before its transaction
			}
			d, _ := dedupe.DeliveryFromContext(ctx)
			tx, err := pool.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx) //nolint:errcheck
			if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (id, by) VALUES ($1, $2)`, e.ID, pg.Holder()); err != nil {
				return err
			}
			if err := pg.AckTx(ctx, tx, d); err != nil {
				if errors.Is(err, dedupe.ErrNotHeld) {
					fenced.Add(1)
				}
				return err // rolls back the insert
			}
			return tx.Commit(ctx)
		}
	}
	gate := make(chan struct{})
	var aCalls atomic.Int32
	a := intake.New(intake.WithQueue(pa), intake.WithLogger(quiet))
	aWrite := write(pa, gate)
	a.Handle(func(ctx context.Context, e event.Event) error { aCalls.Add(1); return aWrite(ctx, e) },
		intake.WithRetryBackoff(time.Millisecond, time.Millisecond), intake.WithAckTimeout(time.Minute))
	b := intake.New(intake.WithQueue(pb), intake.WithLogger(quiet))
	b.Handle(write(pb, nil))
	actx, stopA := context.WithCancel(ctx)
	bctx, stopB := context.WithCancel(ctx)
	adone, bdone := make(chan error, 1), make(chan error, 1)
	go func() { adone <- a.Run(actx) }()
	if err := intaketest.Put(ctx, a, event.Event{Source: "shop", ID: "order-1"}); err != nil {
		t.Fatal(err)
	}
	go func() { bdone <- b.Run(bctx) }()
	time.Sleep(1500 * time.Millisecond) // b leaves a live holder's event alone
	if n := rowsPerID(t, pool, table)["order-1"]; n != 0 {
		t.Fatalf("%d rows while a held the event", n)
	}
	// Cut a's lock, again each time a takes it back, until b, to which a
	// looks gone, has adopted and handled the event.
	deadline := time.Now().Add(10 * time.Second)
	for rowsPerID(t, pool, table)["order-1"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("b did not adopt the event of a holder whose lock was cut")
		}
		if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
			WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2`, 0x696e7461, mustAtoi(t, pa.Holder())); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(gate) // a wakes up and writes
	for fenced.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("a's ack was not fenced")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a retry, were there one, would be 1 ms later
	stopA()
	stopB()
	if err := <-adone; err != nil {
		t.Fatal(err)
	}
	if err := <-bdone; err != nil {
		t.Fatal(err)
	}
	rows := rowsPerID(t, pool, table)
	if rows["order-1"] != 1 {
		t.Fatalf("%d rows for the event, want 1", rows["order-1"])
	}
	if n := aCalls.Load(); n != 1 {
		t.Errorf("a handled the event %d times, want once (let go after ErrNotHeld)", n)
	}
}

func mustAtoi(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// HandleBatch sends the handler's statements and the ack as one batch, in
// one implicit transaction: an ack that cannot be written rolls the
// handler's writes back, with nil (already acked) or ErrNotHeld; a
// statement that fails rolls the ack back.
func TestHandleBatchCommitsOrRollsBackAll(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	table := userTable(t, pool, prefix)
	ctx := context.Background()
	a, b := newBackend(t, pool, prefix), newBackend(t, pool, prefix)
	e := event.Event{Source: "shop", ID: "order-1"}
	k := e.Key()
	if st, err := a.Enqueue(ctx, k, e, time.Hour); err != nil || st != dedupe.Claimed {
		t.Fatal(st, err)
	}
	insert := func(by string, bad bool) func(context.Context, event.Event, *pgx.Batch) error {
		return func(ctx context.Context, e event.Event, batch *pgx.Batch) error {
			batch.Queue(`INSERT INTO `+table+` (id, by) VALUES ($1, $2)`, e.ID, by)
			if bad {
				batch.Queue(`SELECT no_such_column FROM ` + table)
			}
			return nil
		}
	}
	dctx := dedupe.ContextWithDelivery(ctx, delivery{k, "billing"})
	if err := a.HandleBatch(insert("a-bad", true))(dctx, e); err == nil || errors.Is(err, dedupe.ErrNotHeld) {
		t.Fatalf("a failing statement: %v", err)
	}
	if err := b.HandleBatch(insert("b", false))(dctx, e); !errors.Is(err, dedupe.ErrNotHeld) {
		t.Fatalf("a holder that never held the event: %v, want ErrNotHeld", err)
	}
	if err := a.HandleBatch(insert("a", false))(dctx, e); err != nil {
		t.Fatal(err)
	}
	if err := a.HandleBatch(insert("a-again", false))(dctx, e); err != nil {
		t.Fatalf("an event acked before: %v, want nil", err)
	}
	if err := a.HandleBatch(insert("a-mail", false))(dedupe.ContextWithDelivery(ctx, delivery{k, "mail"}), e); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT by FROM `+table+` ORDER BY by`)
	if err != nil {
		t.Fatal(err)
	}
	by, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(by) != 2 || by[0] != "a" || by[1] != "a-mail" {
		t.Fatalf("rows written by %q, want [a a-mail]", by)
	}
	if err := a.HandleBatch(insert("x", false))(ctx, e); err == nil {
		t.Fatal("HandleBatch outside Stream.Handle: no error")
	}
}

// A holder whose lock connection is cut (a network fault, a restarted
// pooler, an administrator's pg_terminate_backend) takes its lock again
// within a few seconds, so that the others stop taking its events for
// those of a dead holder.
func TestHolderRetakesALostLock(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	ctx := context.Background()
	pg := newBackend(t, pool, prefix)
	id := mustAtoi(t, pg.Holder())
	held := func() bool {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2 AND granted`, 0x696e7461, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	if !held() {
		t.Fatal("a new holder holds no lock")
	}
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2`, 0x696e7461, id); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for held() {
		if time.Now().After(deadline) {
			t.Fatal("the lock outlived its connection")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cut := time.Now()
	for !held() {
		if time.Since(cut) > 5*time.Second {
			t.Fatal("the holder did not take its lock again within 5 s of losing it")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("lock taken again %v after it was lost", time.Since(cut).Round(time.Millisecond))
}

// A batched transactional handler: one transaction for the deliveries
// its workers bring at once; a poison event in a batch is isolated by
// halving and dead-lettered alone, every other event written once.
func TestHandleTxBatchIsolatesAPoisonEvent(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	table := userTable(t, pool, prefix)
	pg := newBackend(t, pool, prefix)
	intaketest.TxBatchPoison(t, pg, func(check func([]event.Event) error) intake.HandlerFunc {
		return pg.HandleTxBatch(32, func(ctx context.Context, tx pgx.Tx, events []event.Event) error {
			if err := check(events); err != nil {
				return err
			}
			b := &pgx.Batch{}
			for _, e := range events {
				b.Queue(`INSERT INTO `+table+` (id, by) VALUES ($1, 'batch')`, e.ID)
			}
			return tx.SendBatch(ctx, b).Close()
		})
	}, func() map[string]int { return rowsPerID(t, pool, table) })
}
