package nats_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	intakenats "github.com/intakehq/intake/backend/nats"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/testenv"
)

// A replica that starts while one node of three is down (its streams
// exist, R3) opens its queue, claims and commits: an R3 stream keeps a
// quorum, and finding a stream must not need every peer. Where the node
// killed led a stream (or the cluster's metadata), calls fail until a new
// leader is elected (the test waits up to 30 s for each step).
func TestNewQueueWithANodeDown(t *testing.T) {
	testenv.SkipUnlessLong(t)
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := newCluster(t)
	nc := connect(t, c.URLs(), "the test cluster")
	name := testName(t, nc)
	first := newQueue(t, nc, name, intakenats.WithReplicas(3))
	ctx := context.Background()
	if _, err := first.Enqueue(ctx, "before", event.Event{ID: "before", Source: "s"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	c.Kill(2)
	var q *intakenats.Queue
	var err error
	start := time.Now()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		q, err = intakenats.NewQueue(ctx, nc, intakenats.WithName(name), intakenats.WithReplicas(3), intakenats.WithHeartbeat(time.Second))
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("NewQueue with one node of three down: %v", err)
	}
	defer q.Close()
	t.Logf("opened %v after the node's kill", time.Since(start).Round(time.Millisecond))
	// Until the streams the killed node led have a leader again, calls
	// fail (a webhook is answered 503); a new leader is elected in seconds.
	// A failed attempt may have stored its record (its reply, or the read
	// after it, lost): each attempt is a new event, as the stream gives
	// the keys of failed claims back.
	during := ""
	for try, deadline := 0, time.Now().Add(30*time.Second); ; try++ {
		during = fmt.Sprint("during-", try)
		st, err := q.Enqueue(ctx, during, event.Event{ID: during, Source: "s"}, time.Minute)
		if err == nil && st == dedupe.Claimed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Enqueue with a node down, 30 s after the kill: %v, %v", st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("a claim stored %v after the node's kill", time.Since(start).Round(time.Millisecond))
	if st, err := q.Enqueue(ctx, "before", event.Event{ID: "before", Source: "s"}, time.Minute); err != nil || st != dedupe.Pending {
		t.Fatalf("a duplicate with a node down: %v, %v", st, err)
	}
	if err := q.CommitMany(ctx, []string{during}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if st, err := q.Enqueue(ctx, during, event.Event{ID: during, Source: "s"}, time.Minute); err != nil || st != dedupe.Done {
		t.Fatalf("after the commit: %v, %v", st, err)
	}
}
