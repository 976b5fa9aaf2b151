package redis_test

import (
	"context"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/intakehq/intake"
	intakeredis "github.com/intakehq/intake/backend/redis"
	"github.com/intakehq/intake/poller"
)

// Replicas share one Redis for their idempotency keys and their poller's
// cursor and lease; each keeps its queue in memory.
func Example() {
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	store := intakeredis.New(client)
	stream := intake.New(intake.WithStore(store), intake.WithClaimLease(10*time.Minute))
	_ = poller.WithLease(store.Lease(), 30*time.Second)
	_ = poller.WithCheckpoint(store.Checkpoint())
	_ = stream
}

// A durable queue in Redis: what a webhook was answered 2xx for survives
// a crash of the process (a replica, or the restarted process, adopts it)
// and, with AOF and appendfsync always, of Redis itself.
func ExampleNewQueue() {
	ctx := context.Background()
	client := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:6379"})
	defer client.Close()
	q, err := intakeredis.NewQueue(ctx, client)
	if err != nil {
		return // Redis unreachable
	}
	defer q.Close() // ends the heartbeat: a replica adopts what is left at once
	stream := intake.New(intake.WithQueue(q))
	_ = stream
}
