package postgres_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake/intaketest"
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
	intaketest.PutAck(b, newBackend(b, pool, testPrefix(b, pool)))
}
