package redis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/intakehq/intake/event"
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
	gone := open()
	for i := range 3 {
		if _, err := gone.Enqueue(ctx, fmt.Sprint("k", i), event.Event{Source: "s", ID: fmt.Sprint(i)}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := gone.Extend(ctx, []string{"k0", "k1", "k2"}, 0); err != nil { // given back: adoptable
		t.Fatal(err)
	}

	a := open()
	a.adoptReplyLost = func() error { return errors.New("connection reset as the reply came back") }
	if got, err := a.Adopt(ctx, 10, time.Minute); err == nil {
		t.Fatalf("the lost reply was not an error (%d adopted)", len(got))
	}
	a.adoptReplyLost = nil
	b := open()
	seen := map[string]int{}
	for range 3 { // the next looks of both holders, as their adopters make them
		for _, q := range []*Queue{a, b} {
			got, err := q.Adopt(ctx, 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range got {
				seen[s.Key]++
			}
		}
	}
	if len(seen) != 3 {
		t.Fatalf("after the lost reply, %d of the 3 events were adopted again (%v): the rest are held by a live holder that does not have them", len(seen), seen)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s adopted %d times", k, n)
		}
	}
}
