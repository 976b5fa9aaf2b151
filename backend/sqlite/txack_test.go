package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
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

// HandleTx: a handler that fails after its insert is rolled back and
// retried; one that always fails is dead-lettered with nothing written.
func TestHandleTxRetriesAndDeadLetters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "handle.db")
	b := open(t, path)
	if _, err := b.DB().Exec(`CREATE TABLE orders (id TEXT NOT NULL, by TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	s := intake.New(intake.WithQueue(b), intake.WithLogger(quiet))
	var dead atomic.Int32
	for _, name := range []string{"billing", "mail"} {
		s.Handle(b.HandleTx(func(ctx context.Context, tx *sql.Tx, e event.Event) error {
			n, sub := intake.Attempt(ctx)
			if _, err := tx.ExecContext(ctx, `INSERT INTO orders (id, by) VALUES (?, ?)`, e.ID, sub); err != nil {
				return err
			}
			switch {
			case e.ID == "flaky" && n < 3:
				return fmt.Errorf("attempt %d fails after its insert", n)
			case e.ID == "poison":
				return errors.New("never")
			}
			return nil
		}), intake.WithName(name), intake.WithMaxAttempts(3), intake.WithRetryBackoff(time.Millisecond, 5*time.Millisecond),
			intake.WithDeadLetter(func(context.Context, intake.DeadLetter) { dead.Add(1) }))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for _, id := range []string{"ok", "flaky", "poison"} {
		if err := intaketest.Put(context.Background(), s, event.Event{Source: "shop", ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	rows := func() map[string]int {
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
	deadline := time.Now().Add(10 * time.Second)
	for dead.Load() < 2 || len(rows()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("dead letters %d, rows %v after 10 s", dead.Load(), rows())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := rows(); len(got) != 2 || got["ok"] != 2 || got["flaky"] != 2 {
		t.Fatalf("rows per event %v, want ok and flaky once per subscription", got)
	}
}
