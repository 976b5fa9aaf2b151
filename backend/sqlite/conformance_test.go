package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/poller/pollertest"
	"github.com/intakehq/intake/relay"
	"github.com/intakehq/intake/relay/relaytest"
)

func open(t testing.TB, path string, opts ...sqlite.Option) *sqlite.Backend {
	t.Helper()
	b, err := sqlite.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestStoreConformance(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "store.db"))
	dedupetest.Run(t, func(t *testing.T) dedupe.Store { return b })
}

func TestQueueConformance(t *testing.T) {
	dedupetest.RunQueue(t, func(t *testing.T) func() dedupe.Queue {
		path := filepath.Join(t.TempDir(), "queue.db")
		return func() dedupe.Queue { return open(t, path) }
	})
}

func TestCheckpointConformance(t *testing.T) {
	pollertest.RunCheckpoint(t, open(t, filepath.Join(t.TempDir(), "cp.db")).Checkpoint())
}

func TestLeaseConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lease.db")
	pollertest.RunLease(t, func() poller.Lease { return open(t, path).Lease() })
}

func TestClosed(t *testing.T) {
	b, err := sqlite.Open(filepath.Join(t.TempDir(), "closed.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Claim(t.Context(), "k", 1); err == nil {
		t.Fatal("Claim after Close succeeded")
	}
}

func TestInvalidOptions(t *testing.T) {
	dir := t.TempDir()
	if _, err := sqlite.Open(filepath.Join(dir, "a.db"), sqlite.WithPrefix("bad prefix")); err == nil {
		t.Error("accepted an invalid prefix")
	}
	if _, err := sqlite.Open(filepath.Join(dir, "b.db"), sqlite.WithSynchronous("FULL); DROP")); err == nil {
		t.Error("accepted an invalid synchronous mode")
	}
}

// Tables made by the earlier schema are refused with a clear error.
func TestEarlierSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE intake_keys (key TEXT PRIMARY KEY, state INTEGER NOT NULL, expires_at INTEGER NOT NULL, payload BLOB)`); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.New(db); err == nil || !strings.Contains(err.Error(), "earlier version") {
		t.Fatalf("New on an earlier schema: %v", err)
	}
}

func TestFeedConformance(t *testing.T) {
	relaytest.RunFeed(t, func(t *testing.T) relay.Feed { return open(t, filepath.Join(t.TempDir(), "feed.db")).Feed() })
}

// Releases that arrive together are written together: 300 concurrent
// releases of queued events leave each key free, and no other key
// touched.
func TestConcurrentReleasesBatched(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "release.db"))
	ctx := context.Background()
	keep := event.Key("rel", "keep")
	if st, err := b.Enqueue(ctx, keep, event.Event{ID: "keep", Source: "rel"}, time.Minute); err != nil || st != dedupe.Claimed {
		t.Fatal(st, err)
	}
	keys := make([]string, 300)
	for i := range keys {
		keys[i] = event.Key("rel", fmt.Sprint(i))
		if st, err := b.Enqueue(ctx, keys[i], event.Event{ID: fmt.Sprint(i), Source: "rel"}, time.Minute); err != nil || st != dedupe.Claimed {
			t.Fatal(st, err)
		}
	}
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.Release(ctx, k); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for _, k := range keys {
		if st, err := b.Enqueue(ctx, k, event.Event{ID: k, Source: "rel"}, time.Minute); err != nil || st != dedupe.Claimed {
			t.Fatalf("%s after release: %v %v", k, st, err)
		}
	}
	if st, err := b.Enqueue(ctx, keep, event.Event{ID: "keep", Source: "rel"}, time.Minute); err != nil || st != dedupe.Pending {
		t.Fatalf("a key not released: %v %v", st, err)
	}
}

// Issue #21, item 2: the replay guard of a webhook handler on a stream
// with SQLite is kept in the database, so a restart does not forget it.
func TestReplayGuardSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "guard.db")
	intaketest.ReplayGuardSurvivesRestart(t, func() dedupe.Queue {
		b, err := sqlite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}
