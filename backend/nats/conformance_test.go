package nats_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	intakenats "github.com/intakehq/intake/backend/nats"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
	"github.com/intakehq/intake/internal/testenv"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/poller/pollertest"
	"github.com/intakehq/intake/relay"
	"github.com/intakehq/intake/relay/relaytest"
)

// The conformance suite of dedupe.Queue against one server (R1).
func TestQueueConformance(t *testing.T) {
	nc := testConn(t)
	dedupetest.RunQueue(t, func(t *testing.T) func() dedupe.Queue {
		name := testName(t, nc)
		return func() dedupe.Queue { return newQueue(t, nc, name) }
	})
}

// The same suite against a server of the test's own (natstest.Version),
// which takes atomic batches: commits of many keys go in batches there
// (the shared server may be older).
func TestQueueConformanceOnCurrentServer(t *testing.T) {
	_, nc := ownServer(t)
	dedupetest.RunQueue(t, func(t *testing.T) func() dedupe.Queue {
		name := testName(t, nc)
		return func() dedupe.Queue { return newQueue(t, nc, name) }
	})
}

// The same suite against a three-node cluster of the test's own, every
// stream on all three (R3).
func TestQueueConformanceOnCluster(t *testing.T) {
	testenv.SkipUnlessLong(t)
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := newCluster(t)
	nc := connect(t, c.URLs(), "the test cluster")
	dedupetest.RunQueue(t, func(t *testing.T) func() dedupe.Queue {
		name := testName(t, nc)
		return func() dedupe.Queue { return newQueue(t, nc, name, intakenats.WithReplicas(3)) }
	})
}

// The poller's checkpoint and lease, and the relay feed, against one
// server and against the cluster (R3).
func TestPollersAndFeedConformance(t *testing.T) {
	t.Run("server", func(t *testing.T) {
		pollersAndFeed(t, testConn(t))
	})
	t.Run("cluster", func(t *testing.T) {
		if testing.Short() {
			t.Skip("starts a three-node cluster")
		}
		c := newCluster(t)
		// An R3 stream made just now, under -race on two cores, took over
		// the default 10 s for its first append in a CI run: the requests
		// get 30 s here, and each feed waits for its stream to answer.
		pollersAndFeed(t, connect(t, c.URLs(), "the test cluster"), intakenats.WithReplicas(3), intakenats.WithRequestTimeout(30*time.Second))
	})
}

func pollersAndFeed(t *testing.T, nc *nats.Conn, opts ...intakenats.Option) {
	ctx := context.Background()
	open := func() *intakenats.Queue { return newQueue(t, nc, testName(t, nc), opts...) }
	pollers := func(q *intakenats.Queue) *intakenats.Pollers {
		p, err := q.Pollers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Run("Checkpoint", func(t *testing.T) { pollertest.RunCheckpoint(t, pollers(open()).Checkpoint()) })
	t.Run("Lease", func(t *testing.T) {
		name := testName(t, nc)
		pollertest.RunLease(t, func() poller.Lease {
			return pollers(newQueue(t, nc, name, opts...)).Lease() // a holder each, one bucket
		})
	})
	t.Run("Feed", func(t *testing.T) {
		relaytest.RunFeed(t, func(t *testing.T) relay.Feed {
			f, err := open().Feed(ctx)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			// Ready once its stream answers (a leader elected).
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if _, err = f.Floor(ctx); err == nil || time.Now().After(deadline) {
					break
				}
			}
			if err != nil {
				t.Fatalf("the feed's stream never answered: %v", err)
			}
			return f
		})
	})
}
