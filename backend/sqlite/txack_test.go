package sqlite_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
)

// openDB opens the SQLite file at path as a user's program would, for
// sqlite.New and for the user's own transactions.
func openDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestTxAckConformance(t *testing.T) {
	var mu sync.Mutex
	dbs := map[dedupe.Queue]*sql.DB{}
	dedupetest.RunTxAck(t, func(t *testing.T) func() dedupe.Queue {
		db := openDB(t, filepath.Join(t.TempDir(), "txack.db"))
		return func() dedupe.Queue {
			b, err := sqlite.New(db)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			mu.Lock()
			dbs[b] = db
			mu.Unlock()
			return b
		}
	}, func(ctx context.Context, q dedupe.Queue, d dedupe.Delivery, commit bool) error {
		mu.Lock()
		db := dbs[q]
		mu.Unlock()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback() //nolint:errcheck
		if err := q.(*sqlite.Backend).AckTx(ctx, tx, d); err != nil {
			return err
		}
		if commit {
			return tx.Commit()
		}
		return nil
	})
}

// Tables made before the done column get it.
func TestDoneColumnAdded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db := openDB(t, path)
	if _, err := db.Exec(`CREATE TABLE intake_keys (key BLOB PRIMARY KEY, state INTEGER NOT NULL, expires_at INTEGER NOT NULL,
		holder TEXT, seq INTEGER, event BLOB, source BLOB, type BLOB, attempts INTEGER NOT NULL DEFAULT 0, failure BLOB)`); err != nil {
		t.Fatal(err)
	}
	b, err := sqlite.New(db)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	k := event.Key("api", "old")
	if _, err := b.Enqueue(ctx, k, event.Event{Source: "api", ID: "old"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck
	if err := b.AckTx(ctx, tx, fakeDelivery{k, "x"}); err != nil {
		t.Fatal(err)
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type fakeDelivery struct{ key, sub string }

func (d fakeDelivery) Key() string          { return d.key }
func (d fakeDelivery) Subscription() string { return d.sub }

// HandleTx under retries and dead letters: a failure after the insert
// rolls it back, Attempt works inside, two subscriptions write once each.
func TestHandleTxRetriesAndDeadLetters(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "handle.db"))
	if _, err := b.DB().Exec(`CREATE TABLE orders (id TEXT NOT NULL, by TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	intaketest.TxRetries(t, b, func(after func(context.Context, event.Event) error) intake.HandlerFunc {
		return b.HandleTx(func(ctx context.Context, tx *sql.Tx, e event.Event) error {
			_, sub := intake.Attempt(ctx)
			if _, err := tx.ExecContext(ctx, `INSERT INTO orders (id, by) VALUES (?, ?)`, e.ID, sub); err != nil {
				return err
			}
			return after(ctx, e)
		})
	}, func() map[string]int { return ordersPerID(t, b) })
}

// A batched transactional handler: one transaction for the deliveries
// its workers bring at once; a poison event in a batch is isolated by
// halving and dead-lettered alone, every other event written once.
func TestHandleTxBatchIsolatesAPoisonEvent(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "batch.db"))
	if _, err := b.DB().Exec(`CREATE TABLE orders (id TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	intaketest.TxBatchPoison(t, b, func(check func([]event.Event) error) intake.HandlerFunc {
		return b.HandleTxBatch(32, func(ctx context.Context, tx *sql.Tx, events []event.Event) error {
			if err := check(events); err != nil {
				return err
			}
			for _, e := range events {
				if _, err := tx.ExecContext(ctx, `INSERT INTO orders (id) VALUES (?)`, e.ID); err != nil {
					return err
				}
			}
			return nil
		})
	}, func() map[string]int { return ordersPerID(t, b) })
}

// ordersPerID counts the rows of the orders table per id.
func ordersPerID(t *testing.T, b *sqlite.Backend) map[string]int {
	t.Helper()
	m := map[string]int{}
	rs, err := b.DB().Query(`SELECT id, count(*) FROM orders GROUP BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	for rs.Next() {
		var id string
		var n int
		if err := rs.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		m[id] = n
	}
	return m
}
