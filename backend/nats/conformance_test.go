package nats_test

import (
	"testing"

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
