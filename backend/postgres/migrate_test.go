package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/intakehq/intake/backend/postgres"
)

// Issue #34, item 7: a replica's start takes no lock on the keys table
// when the schema is current, so a long transaction of another replica
// (a HandleTx handler working) neither stalls the start nor, through the
// start's queued lock, every other session's statements.
func TestStartDoesNotLockACurrentSchema(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	newBackend(t, pool, prefix) // the first replica made the tables

	ctx := context.Background()
	// Another replica's transaction, open and holding a row lock (the
	// table's ROW EXCLUSIVE lock), as a HandleTx handler's does.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, "INSERT INTO "+prefix+"keys (hash, state, expires_at) VALUES ('\\x00', 2, now())"); err != nil {
		t.Fatal(err)
	}

	started := make(chan error, 1)
	go func() {
		b, err := postgres.New(ctx, pool, postgres.WithPrefix(prefix))
		if err == nil {
			defer b.Close()
		}
		started <- err
	}()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("a second replica's start: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a second replica's start waited on another replica's open transaction")
	}
	// A third session's statement on the table runs while the
	// transaction is still open.
	third, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var n int
	if err := pool.QueryRow(third, "SELECT count(*) FROM "+prefix+"keys WHERE state = 1").Scan(&n); err != nil {
		t.Fatalf("a third session's read while the transaction is open: %v", err)
	}
}

// A start that must change the schema waits for the table's lock at most
// WithLockTimeout, then fails with an error saying so, instead of
// queueing every other session behind it.
func TestMigrationGivesUpOnALockedTable(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	newBackend(t, pool, prefix)
	ctx := context.Background()
	// An older layout: a column this version adds is missing.
	if _, err := pool.Exec(ctx, "ALTER TABLE "+prefix+"keys DROP COLUMN adopted"); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO "+prefix+"keys (hash, state, expires_at) VALUES ('\\x00', 2, now())"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = postgres.New(ctx, pool, postgres.WithPrefix(prefix), postgres.WithLockTimeout(200*time.Millisecond))
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55P03" || !strings.Contains(err.Error(), "lock") {
		t.Fatalf("a migration behind an open transaction: %v (after %v), want a lock timeout", err, time.Since(start))
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// Once the table is free, the start migrates.
	b, err := postgres.New(ctx, pool, postgres.WithPrefix(prefix))
	if err != nil {
		t.Fatalf("the start after the transaction ended: %v", err)
	}
	b.Close()
}
