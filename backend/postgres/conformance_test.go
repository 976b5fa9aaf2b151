package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/poller/pollertest"
)

func TestStoreConformance(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	dedupetest.Run(t, func(t *testing.T) dedupe.Store { return newBackend(t, pool, prefix) })
}

func TestQueueConformance(t *testing.T) {
	pool := testPool(t)
	dedupetest.RunQueue(t, func(t *testing.T) func() dedupe.Queue {
		prefix := testPrefix(t, pool)
		return func() dedupe.Queue { return newBackend(t, pool, prefix) }
	})
}

func TestCheckpointConformance(t *testing.T) {
	pool := testPool(t)
	pollertest.RunCheckpoint(t, newBackend(t, pool, testPrefix(t, pool)).Checkpoint())
}

func TestLeaseConformance(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	pollertest.RunLease(t, func() poller.Lease { return newBackend(t, pool, prefix).Lease() })
}

func TestInvalidPrefix(t *testing.T) {
	pool := testPool(t)
	if _, err := postgres.New(context.Background(), pool, postgres.WithPrefix("x; DROP TABLE y")); err == nil {
		t.Fatal("accepted an invalid prefix")
	}
}

// Tables made by the earlier schema (text keys, a column per field) are
// refused with a clear error rather than used wrongly.
func TestEarlierSchemaRefused(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	if _, err := pool.Exec(context.Background(), "CREATE TABLE "+prefix+"keys (key text PRIMARY KEY, state smallint NOT NULL, expires_at timestamptz NOT NULL, payload bytea)"); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.New(context.Background(), pool, postgres.WithPrefix(prefix))
	if err == nil || !strings.Contains(err.Error(), "earlier version") {
		t.Fatalf("New on an earlier schema: %v", err)
	}
}
