package redis_test

import (
	"context"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	intakeredis "github.com/intakehq/intake/backend/redis"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
	"github.com/intakehq/intake/intaketest"
)

// newQueue opens a holder on c under prefix, closed when the test ends.
func newQueue(t testing.TB, c goredis.UniversalClient, prefix string, opts ...intakeredis.QueueOption) *intakeredis.Queue {
	t.Helper()
	q, err := intakeredis.NewQueue(context.Background(), c, append([]intakeredis.QueueOption{intakeredis.WithQueuePrefix(prefix)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func TestQueueConformance(t *testing.T) {
	c := testClient(t)
	dedupetest.RunQueue(t, func(t *testing.T) func() dedupe.Queue {
		prefix := queuePrefix(t, c)
		return func() dedupe.Queue { return newQueue(t, c, prefix) }
	})
}

// BenchmarkPutAck measures a stream's Put → deliver → Ack throughput with
// the Redis queue against the in-memory default in the same run, from 32
// concurrent putters, interleaved:
//
//	go test ./backend/redis -run x -bench PutAck -benchtime 20000x -count 3
func BenchmarkPutAck(b *testing.B) {
	b.Run("queue=memory", func(b *testing.B) { intaketest.PutAck(b, nil) })
	b.Run("queue=redis", func(b *testing.B) {
		c := testClient(b)
		q := newQueue(b, c, queuePrefix(b, c))
		intaketest.PutAck(b, q)
	})
}

// Issue #21, item 2: the replay guard of a webhook handler on a stream
// with the Redis queue is kept in Redis, so a restart does not forget it.
func TestReplayGuardSurvivesRestart(t *testing.T) {
	c := testClient(t)
	prefix := queuePrefix(t, c)
	intaketest.ReplayGuardSurvivesRestart(t, func() dedupe.Queue {
		q, err := intakeredis.NewQueue(context.Background(), c, intakeredis.WithQueuePrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		return q
	})
}
