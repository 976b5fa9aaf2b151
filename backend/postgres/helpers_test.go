package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intakehq/intake/backend/postgres"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// dsn is the test server: INTAKE_POSTGRES_DSN, or the local one.
func dsn() string {
	if d := os.Getenv("INTAKE_POSTGRES_DSN"); d != "" {
		return d
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// testPool connects to the test server. When none answers, the test skips
// with how to start one, except under CI=true, where it fails.
func testPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, dsn())
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		msg := "PostgreSQL not reachable at " + dsn() + ": " + err.Error() +
			"; start one with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` or set INTAKE_POSTGRES_DSN"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(pool.Close)
	return pool
}

// testPrefix returns a table prefix of its own for a test, and drops its
// tables when the test ends.
func testPrefix(t testing.TB, pool *pgxpool.Pool) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	p := "t" + hex.EncodeToString(b[:]) + "_"
	t.Cleanup(func() {
		ctx := context.Background()
		for _, tbl := range []string{"keys", "checkpoints", "leases", "feed", "connections", "budgets", "versions"} {
			_, _ = pool.Exec(ctx, "DROP TABLE IF EXISTS "+p+tbl)
		}
		_, _ = pool.Exec(ctx, "DROP SEQUENCE IF EXISTS "+p+"keys_seq")
	})
	return p
}

func newBackend(t testing.TB, pool *pgxpool.Pool, prefix string) *postgres.Backend {
	t.Helper()
	b, err := postgres.New(context.Background(), pool, postgres.WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}
