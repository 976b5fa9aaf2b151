package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/console"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
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

// BenchmarkConsoleDeadPage loads the console's page of dead events with
// 100,000 of them stored, the first page and one deep in (after seq
// 90,000), next to the bare SELECT of the same page, in the same run:
// pages go by seq through the index of dead events, with no full scan.
//
//	go test ./backend/postgres -run x -bench ConsoleDeadPage -benchtime 200x
func BenchmarkConsoleDeadPage(b *testing.B) {
	pool := testPool(b)
	prefix := testPrefix(b, pool)
	be := newBackend(b, pool, prefix)
	ctx := context.Background()
	enc, _ := event.Event{ID: "evt", Source: "shop", Type: "order.paid", Payload: []byte(`{"amount":4200}`)}.MarshalBinary()
	fj, _ := json.Marshal(dedupe.Failure{Err: "customer not found", Attempts: 5, Subscription: "orders"})
	if _, err := pool.Exec(ctx, `INSERT INTO `+prefix+`keys (hash, state, expires_at, seq, key, event, source, type, attempts, failure)
		SELECT sha256(('k' || g)::bytea), 3, now() + interval '1 day', g, ('k' || g)::bytea, $1, 'shop'::bytea, 'order.paid'::bytea, 5, $2
		FROM generate_series(1, 100000) AS g`, enc, fj); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE `+prefix+`keys`); err != nil {
		b.Fatal(err)
	}
	h := console.New(intake.New(intake.WithQueue(be), intake.WithLogger(quiet)), console.WithLogger(quiet))
	for _, after := range []int64{0, 90_000} {
		b.Run(fmt.Sprintf("page=after-%d/impl=bare-select", after), func(b *testing.B) {
			for range b.N {
				rows, err := pool.Query(ctx, `SELECT key, seq, state, attempts, failure, event FROM `+prefix+`keys
					WHERE seq IS NOT NULL AND state = 3 AND seq > $1 ORDER BY seq LIMIT 50`, after)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for rows.Next() {
					n++
				}
				rows.Close()
				if n != 50 {
					b.Fatalf("%d rows", n)
				}
			}
		})
		b.Run(fmt.Sprintf("page=after-%d/impl=console", after), func(b *testing.B) {
			for range b.N {
				r := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/events?state=dead&after=%d", after), nil)
				r.RemoteAddr = "127.0.0.1:1"
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "next page") {
					b.Fatalf("%d", w.Code)
				}
			}
		})
	}
}
