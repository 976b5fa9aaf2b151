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

// A holder that gives events back, a replay, and a holder that closes
// wake the other holders' adopters; an enqueue and its own give-back do
// not.
func TestQueueAdoptWakeUp(t *testing.T) {
	c := testClient(t)
	prefix := queuePrefix(t, c)
	a, b := newQueue(t, c, prefix), newQueue(t, c, prefix)
	ready := b.AdoptReady()
	ctx := context.Background()
	expect := func(what string) {
		t.Helper()
		select {
		case <-ready:
		case <-time.After(10 * time.Second):
			t.Fatalf("no wake-up after %s", what)
		}
	}
	quietFor := func(what string) {
		t.Helper()
		select {
		case <-ready:
			t.Fatalf("a wake-up after %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
	k := event.Key("wake", "1")
	if _, err := a.Enqueue(ctx, k, event.Event{ID: "1", Source: "wake"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	quietFor("an enqueue")
	if err := a.Extend(ctx, []string{k}, 0); err != nil {
		t.Fatal(err)
	}
	expect("a give-back")
	if got, err := b.Adopt(ctx, 10, time.Minute); err != nil || len(got) != 1 {
		t.Fatalf("adopted %v, %v", got, err)
	}
	if err := b.Bury(ctx, k, dedupe.Failure{Err: "x", Attempts: 1}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := a.Replay(ctx, k); err != nil {
		t.Fatal(err)
	}
	expect("a replay")
	if err := b.Extend(ctx, []string{k}, 0); err != nil {
		t.Fatal(err)
	}
	quietFor("its own give-back")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	expect("a holder's Close")
}
