package postgres_test

import (
	"context"
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
