package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intakehq/intake/event"
)

// A transaction that cannot begin because the database does not answer
// is an infrastructure failure (no attempt spent); the server's own
// answer, or the context's end, is not.
func TestUnreachableIsInfrastructure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, err = pool.Begin(ctx)
	if err == nil {
		t.Fatal("began a transaction on port 1")
	}
	for _, tc := range []struct {
		name string
		err  error
		want event.Class
	}{
		{"connection refused", fmt.Errorf("postgres: begin and ack: %w", err), event.Infrastructure},
		{"the server's answer", &pgconn.PgError{Code: "42P01", Message: `relation "x" does not exist`}, event.Transient},
		{"canceled", fmt.Errorf("begin: %w", context.Canceled), event.Transient},
		{"deadline", context.DeadlineExceeded, event.Transient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := unreachable(tc.err)
			if c := event.ClassOf(got); c != tc.want {
				t.Fatalf("class of %v: %s, want %s", tc.err, c, tc.want)
			}
			if !errors.Is(got, tc.err) {
				t.Fatalf("%v does not wrap %v", got, tc.err)
			}
		})
	}
}
