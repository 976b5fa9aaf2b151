package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
)

// BenchmarkClaim compares the backend's Claim with a bare INSERT … ON
// CONFLICT DO NOTHING of the same row (the key's SHA-256, state, expiry,
// holder), in the same run, from parallel goroutines on distinct keys.
// Report the ratio of ns/op:
//
//	go test ./backend/postgres -run x -bench Claim
func BenchmarkClaim(b *testing.B) {
	pool := testPool(b)
	prefix := testPrefix(b, pool)
	be := newBackend(b, pool, prefix)
	ctx := context.Background()
	var next atomic.Int64
	b.Run("impl=bare-insert-on-conflict", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				h := sha256.Sum256([]byte(fmt.Sprint("bare-", next.Add(1))))
				if _, err := pool.Exec(ctx, `INSERT INTO `+prefix+`keys (hash, state, expires_at, holder)
					VALUES ($1, 1, now() + $2 * interval '1 microsecond', $3) ON CONFLICT DO NOTHING`,
					h[:], int64(time.Hour/time.Microsecond), "bench"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("impl=backend-claim", func(b *testing.B) {
		b.SetParallelism(4)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := be.Claim(ctx, fmt.Sprint("claim-", next.Add(1)), time.Hour); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkPutAck runs a stream on the Postgres queue: 32 goroutines put
// events with a small payload, 16 handler workers ack them, and it
// reports events/s, each enqueued and committed in Postgres:
//
//	go test ./backend/postgres -run x -bench PutAck -benchtime 5000x
func BenchmarkPutAck(b *testing.B) {
	pool := testPool(b)
	prefix := testPrefix(b, pool)
	s := intake.New(intake.WithQueue(newBackend(b, pool, prefix)), intake.WithLogger(quiet), intake.WithQueueSize(4096))
	var acked atomic.Int64
	s.Handle(func(context.Context, event.Event) error { acked.Add(1); return nil }, intake.WithWorkers(16))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for errors.Is(s.Put(ctx, event.Event{Source: "warm", ID: "up"}), event.ErrNotRunning) {
		time.Sleep(time.Millisecond)
	}
	for acked.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	var next atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := event.Event{Source: "bench", ID: fmt.Sprint(next.Add(1)), Payload: []byte(`{"amount":100}`)}
			for {
				err := s.Put(ctx, e)
				if err == nil {
					break
				}
				if !errors.Is(err, event.ErrQueueFull) {
					b.Error(err)
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
	})
	for acked.Load() < int64(b.N)+1 {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	cancel()
	<-done
}
