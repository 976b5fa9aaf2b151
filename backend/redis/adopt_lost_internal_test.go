package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
)

// An adoption's reply can be lost after its script ran (a connection cut
// as the reply comes back): the events it took stay held by this live
// holder, which never got them, and no other holder adopts them while its
// heartbeat lives. Adopt now gives them back at its next call, so they
// are adopted (here or elsewhere) once. (The same was found for claims by
// the fault campaign.)
func TestLostAdoptionReplyIsGivenBack(t *testing.T) {
	addr := os.Getenv("INTAKE_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		msg := "Redis not reachable at " + addr + ": " + err.Error() + `; start one with redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	prefix := fmt.Sprintf("{lostadopt%d}:", rand.Uint64())
	t.Cleanup(func() {
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		c.Close()
	})
	open := func() *Queue {
		q, err := NewQueue(ctx, c, WithQueuePrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	}
	dedupetest.RunLostAdoptionReply(t, func() dedupe.Queue { return open() }, func(q dedupe.Queue, on bool) {
		q.(*Queue).adoptReplyLost = nil
		if on {
			q.(*Queue).adoptReplyLost = func() error { return errors.New("connection reset as the reply came back") }
		}
	})
}
