package postgres_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/poller/pollertest"
	"github.com/intakehq/intake/relay"
	"github.com/intakehq/intake/relay/relaytest"
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

func TestFeedConformance(t *testing.T) {
	pool := testPool(t)
	relaytest.RunFeed(t, func(t *testing.T) relay.Feed { return newBackend(t, pool, testPrefix(t, pool)).Feed() })
}

// TestFeedReplicas: a long poll held on relay replica A returns an event
// stored through replica B.
func TestFeedReplicas(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	a, b := newBackend(t, pool, prefix).Feed(), newBackend(t, pool, prefix).Feed()
	h := relay.NewHandler(a, []string{"t"})
	srv := httptest.NewServer(h)
	defer srv.Close()
	time.Sleep(200 * time.Millisecond) // A's listener is up
	go func() {
		time.Sleep(300 * time.Millisecond)
		_ = b.Append(context.Background(), event.Event{ID: "via-b", Source: "s", Payload: []byte(`{}`)})
	}()
	start := time.Now()
	pg, err := relay.NewFetcher(srv.URL, "t", relay.WithWait(10*time.Second)).Fetch(context.Background(), "")
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Events) != 1 || pg.Events[0].ID != "via-b" {
		t.Fatalf("got %+v", pg.Events)
	}
	t.Logf("the long poll on A returned %v after it began, the event stored through B at 300 ms", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("took %v: A was not woken by B's append", took)
	}
}

// Issue #21, item 2: the replay guard of a webhook handler on a stream
// with Postgres is kept in the database, so a restart does not forget it.
func TestReplayGuardSurvivesRestart(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	intaketest.ReplayGuardSurvivesRestart(t, func() dedupe.Queue {
		b, err := postgres.New(context.Background(), pool, postgres.WithPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}
