package redis_test

import (
	"context"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	intakeredis "github.com/intakehq/intake/backend/redis"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
	"github.com/intakehq/intake/event"
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

// Found by the fault campaign (examples/chaos): a holder whose heartbeat
// lapsed while it lived (its link to Redis cut for longer than the
// heartbeat) adopted its own events, which it still had in memory, and
// each was delivered twice in one process. Another holder adopting them
// is the documented window of a holder taken over; the holder itself
// never does.
func TestHolderNeverAdoptsItsOwnEvents(t *testing.T) {
	ctx := context.Background()
	c := testClient(t)
	prefix := queuePrefix(t, c)
	q := newQueue(t, c, prefix, intakeredis.WithHeartbeat(time.Minute)) // no beat during the test
	st, err := q.Enqueue(ctx, "k", event.Event{Source: "s", ID: "1"}, time.Minute)
	if err != nil || st != dedupe.Claimed {
		t.Fatalf("enqueue: %v, %v", st, err)
	}
	live, err := c.Keys(ctx, prefix+"live:*").Result()
	if err != nil || len(live) != 1 {
		t.Fatalf("heartbeat keys %v, %v", live, err)
	}
	if err := c.Del(ctx, live...).Err(); err != nil { // the heartbeat lapses
		t.Fatal(err)
	}
	got, err := q.Adopt(ctx, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("the holder adopted %d of its own events", len(got))
	}
	got, err = newQueue(t, c, prefix).Adopt(ctx, 10, time.Minute)
	if err != nil || len(got) != 1 {
		t.Fatalf("another holder adopted %d events (%v), want the lapsed holder's 1", len(got), err)
	}
}
