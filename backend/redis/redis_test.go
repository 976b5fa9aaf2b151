package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/intakehq/intake"
	intakeredis "github.com/intakehq/intake/backend/redis"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/poller/pollertest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func addr() string {
	if a := os.Getenv("INTAKE_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// testClient connects to the test server. When none answers, the test
// skips with how to start one, except under CI=true, where it fails.
func testClient(t testing.TB) *goredis.Client {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr()})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		msg := "Redis not reachable at " + addr() + ": " + err.Error() +
			`; start one with redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no, or set INTAKE_REDIS_ADDR`
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testPrefix is a key prefix of the test's own; its keys are deleted when
// the test ends.
func testPrefix(t testing.TB, c *goredis.Client) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	p := "intaketest:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, p+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return p
}

func TestStoreConformance(t *testing.T) {
	c := testClient(t)
	s := intakeredis.New(c, intakeredis.WithPrefix(testPrefix(t, c)))
	dedupetest.Run(t, func(t *testing.T) dedupe.Store { return s })
}

func TestCheckpointConformance(t *testing.T) {
	c := testClient(t)
	pollertest.RunCheckpoint(t, intakeredis.New(c, intakeredis.WithPrefix(testPrefix(t, c))).Checkpoint())
}

func TestLeaseConformance(t *testing.T) {
	c := testClient(t)
	prefix := testPrefix(t, c)
	pollertest.RunLease(t, func() poller.Lease { return intakeredis.New(c, intakeredis.WithPrefix(prefix)).Lease() })
}

// TestReplicasShareTheStore runs three streams whose store is one Redis,
// with the keys alone and with the durable queue. 10,000 unique events,
// 30% of them put twice through another replica and another path, are
// each handled exactly once in total.
func TestReplicasShareTheStore(t *testing.T) {
	c := testClient(t)
	t.Run("store", func(t *testing.T) {
		prefix := testPrefix(t, c)
		replicasOnce(t, func() intake.Option { return intake.WithStore(intakeredis.New(c, intakeredis.WithPrefix(prefix))) })
	})
	t.Run("queue", func(t *testing.T) {
		prefix := queuePrefix(t, c)
		replicasOnce(t, func() intake.Option { return intake.WithQueue(newQueue(t, c, prefix)) })
	})
}

// replicasOnce runs the replicas test with each replica's stream set up
// by store.
func replicasOnce(t *testing.T, store func() intake.Option) {
	const unique, replicas = 10_000, 3
	var handled intaketest.Counter
	streams := make([]*intake.Stream, replicas)
	ctx, cancel := context.WithCancel(context.Background())
	var runs sync.WaitGroup
	for r := range replicas {
		s := intake.New(store(), intake.WithLogger(quiet))
		s.Handle(handled.Handle, intake.WithWorkers(4))
		streams[r] = s
		runs.Add(1)
		go func() {
			defer runs.Done()
			if err := s.Run(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	var puts sync.WaitGroup
	var stored, dups atomic.Int64
	for w := range 12 {
		puts.Add(1)
		go func() {
			defer puts.Done()
			for i := w; i < unique; i += 12 {
				id := fmt.Sprintf("evt_%05d", i)
				copies := 1
				if i%10 < 3 {
					copies = 2
				}
				for c := range copies {
					via := event.Webhook
					if (i+c)%2 == 1 {
						via = event.Poll
					}
					e := event.Event{Source: "provider", ID: id, Via: via}
					for {
						err := streams[(i+c)%replicas].Put(ctx, e)
						switch {
						case err == nil:
							stored.Add(1)
						case errorsIsAny(err, event.ErrDuplicate, event.ErrPending):
							dups.Add(1)
						default:
							time.Sleep(time.Millisecond) // not running yet, or full
							continue
						}
						break
					}
				}
			}
		}()
	}
	puts.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if handled.Len() == unique || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	runs.Wait()
	if stored.Load() != unique || dups.Load() != 3000 {
		t.Errorf("stored %d and suppressed %d, want %d and 3000", stored.Load(), dups.Load(), unique)
	}
	counts := handled.Counts()
	if len(counts) != unique {
		t.Fatalf("%d of %d handled", len(counts), unique)
	}
	for id, n := range counts {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
		}
	}
}

func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

// BenchmarkClaim compares Backend.Claim with a bare SET NX PX round trip in
// the same run, from parallel goroutines on distinct keys:
//
//	go test ./backend/redis -run x -bench Claim
func BenchmarkClaim(b *testing.B) {
	c := testClient(b)
	prefix := testPrefix(b, c)
	s := intakeredis.New(c, intakeredis.WithPrefix(prefix))
	ctx := context.Background()
	var next atomic.Int64
	b.Run("impl=bare-set-nx-px", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := c.SetNX(ctx, fmt.Sprint(prefix, "bare:", next.Add(1)), "p", time.Hour).Err(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("impl=store-claim", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Claim(ctx, fmt.Sprint("claim-", next.Add(1)), time.Hour); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// TestOutage points the store at a port where nothing listens: Put fails
// with a retryable error (a webhook answers 503), and nothing is claimed.
func TestOutage(t *testing.T) {
	testClient(t)
	dead := goredis.NewClient(&goredis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer dead.Close()
	s := intake.New(intake.WithStore(intakeredis.New(dead)), intake.WithLogger(quiet))
	s.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var err error
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if err = s.Put(ctx, event.Event{Source: "p", ID: "1"}); !errors.Is(err, event.ErrNotRunning) {
			break
		}
	}
	if err == nil || errors.Is(err, event.ErrNotRunning) {
		t.Fatalf("Put with the store down: %v", err)
	}
	if _, retry := event.RetryDelay(err); !retry {
		t.Errorf("store error not retryable: %v", err)
	}
}

func TestOpenURL(t *testing.T) {
	testClient(t)
	s, err := intakeredis.Open("redis://" + addr() + "/0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	k := fmt.Sprint("open-url-", time.Now().UnixNano())
	if st, err := s.Claim(context.Background(), k, time.Second); err != nil || st != dedupe.Claimed {
		t.Fatalf("Claim = %v, %v", st, err)
	}
	if _, err := intakeredis.Open("not a url"); err == nil {
		t.Error("Open accepted a bad URL")
	}
}
