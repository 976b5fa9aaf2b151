// Package pgtest is what the load harnesses' commands and tests share
// about the PostgreSQL they run on.
package pgtest

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DSN is the harness's PostgreSQL: INTAKE_POSTGRES_DSN, or the local one.
func DSN() string {
	if d := os.Getenv("INTAKE_POSTGRES_DSN"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// Require returns DSN when a server answers there; otherwise the test
// skips saying how to start one, or fails under CI=true.
func Require(t testing.TB) string {
	t.Helper()
	dsn := DSN()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, dsn)
	if err == nil {
		err = pool.Ping(ctx)
		pool.Close()
	}
	if err != nil {
		msg := "PostgreSQL not reachable at " + dsn + ": " + err.Error() + "; start one with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return dsn
}

// DropPrefix drops every table and the sequence of a table prefix.
func DropPrefix(pool *pgxpool.Pool, p string) {
	ctx := context.Background()
	rows, err := pool.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE $1`, p+"%")
	if err != nil {
		return
	}
	var names []string
	for rows.Next() {
		var n string
		if rows.Scan(&n) == nil {
			names = append(names, n)
		}
	}
	rows.Close()
	for _, n := range names {
		_, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS "`+n+`" CASCADE`)
	}
	_, _ = pool.Exec(ctx, `DROP SEQUENCE IF EXISTS "`+p+`keys_seq"`)
}
