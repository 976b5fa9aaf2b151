package nats_test

import (
	"testing"

	intakenats "github.com/intakehq/intake/backend/nats"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
)

// The conformance suite of dedupe.Queue against one server (R1).
func TestQueueConformance(t *testing.T) {
	nc := testConn(t)
	dedupetest.RunQueue(t, func(t *testing.T) func() dedupe.Queue {
		name := testName(t, nc)
		return func() dedupe.Queue { return newQueue(t, nc, name) }
	})
}

// The same suite against a three-node cluster of the test's own, every
// stream on all three (R3).
func TestQueueConformanceOnCluster(t *testing.T) {
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
