package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkClaim compares the backend's Claim with a bare INSERT … ON
// CONFLICT DO NOTHING into a table of the same shape, in the same run,
// from parallel goroutines on distinct keys. Report the ratio of ns/op:
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
				k := fmt.Sprint("bare-", next.Add(1))
				if _, err := pool.Exec(ctx, `INSERT INTO `+prefix+`keys (key, state, expires_at, holder)
					VALUES ($1, 1, now() + $2 * interval '1 microsecond', $3) ON CONFLICT DO NOTHING`,
					k, int64(time.Hour/time.Microsecond), "bench"); err != nil {
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
