package nats_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	intakenats "github.com/intakehq/intake/backend/nats"
	"github.com/intakehq/intake/backend/nats/natstest"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/testenv"
	"github.com/nats-io/nats.go"
)

// Found by the fault campaign (a committed event's record back, queued,
// after the server was SIGKILLed): nats-server's file store does not
// record the deletions a stream's limit of one message a subject makes.
// A record replaced by a newer version (given back, adopted, buried)
// lost its older version to that limit; once the newest was deleted (a
// commit, a discarded dead letter) and the server killed, the older one
// came back on restart: every resend of a committed event was answered
// pending (409) until a sweep found it, and a discarded dead letter was
// queued again, to be delivered. Older versions are now purged by the
// write that replaces them, which the server records. The test runs on
// one server (R1), where the old layout lost 300 of 300 of each, and on a
// three-node cluster (R3) whose every node is killed, where it lost none
// (each node replays the stream's log on restart): rollups must keep
// that so.
func TestServerCrashUndoesNoDeletion(t *testing.T) {
	testenv.SkipUnlessLong(t)
	t.Run("one server", func(t *testing.T) {
		c, nc := ownServer(t)
		crashUndoesNoDeletion(t, c, newQueue(t, nc, "CRASH"))
	})
	t.Run("three nodes", func(t *testing.T) {
		c := newCluster(t)
		nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		crashUndoesNoDeletion(t, c, newQueue(t, nc, "CRASH", intakenats.WithReplicas(3)))
	})
}

func crashUndoesNoDeletion(t *testing.T, c *natstest.Cluster, q *intakenats.Queue) {
	ctx := context.Background()

	const n = 300
	var committed, discarded []string
	for i := range 2 * n {
		k := fmt.Sprint("k", i)
		if st, err := q.Enqueue(ctx, k, event.Event{Source: "s", ID: k}, time.Minute); err != nil || st != dedupe.Claimed {
			t.Fatalf("Enqueue: %v, %v", st, err)
		}
		if i < n {
			committed = append(committed, k)
		} else {
			discarded = append(discarded, k)
		}
	}
	// Each committed record replaced twice (given back, adopted again),
	// then committed; each discarded one replaced once (buried).
	if err := q.Extend(ctx, committed, 0); err != nil {
		t.Fatal(err)
	}
	for adopted := 0; adopted < n; {
		got, err := q.Adopt(ctx, n, time.Minute)
		if err != nil || len(got) == 0 {
			t.Fatalf("Adopt: %d, %v after %d of %d", len(got), err, adopted, n)
		}
		adopted += len(got)
	}
	if err := q.CommitMany(ctx, committed, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, k := range discarded {
		if err := q.Bury(ctx, k, dedupe.Failure{Err: "poison", Attempts: 1}, time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := q.Discard(ctx, k); err != nil {
			t.Fatal(err)
		}
	}

	crashAll(t, c)

	back := map[string]int{}
	for _, k := range append(committed, discarded...) {
		var err error
		// The streams answer a moment after the servers: the connection
		// comes back, and on the cluster each stream elects a leader.
		for deadline := time.Now().Add(30 * time.Second); ; {
			if _, err = q.Get(ctx, k); err == nil || errors.Is(err, dedupe.ErrNotFound) || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		switch {
		case errors.Is(err, dedupe.ErrNotFound):
		case err != nil:
			t.Fatalf("Get %s: %v", k, err)
		case slices.Contains(committed, k):
			back["committed"]++
		default:
			back["discarded"]++
		}
	}
	if len(back) > 0 {
		t.Errorf("records back after the server's crash: %v (of %d each)", back, n)
	}
	for _, k := range committed {
		// The done keys live in a stream of their own, which may elect its
		// leader after the records' did (a loaded machine, -race): an
		// error is waited out, a wrong answer is not.
		var st dedupe.State
		var err error
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			st, err = q.Enqueue(ctx, k, event.Event{Source: "s", ID: k}, time.Minute)
			if err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil || st != dedupe.Done {
			t.Fatalf("a resend of committed %s: %v, %v; want done", k, st, err)
		}
	}
}
