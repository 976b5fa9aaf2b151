package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/console"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
	"github.com/intakehq/intake/poller"
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

// BenchmarkPollBacklog drains a backlog of b.N events, in pages of 100,
// through a poller into a stream on the Postgres queue with an acking
// handler: the page put with PutMany (one statement a page) next to the
// same poller putting each event on its own, in the same run.
//
//	go test ./backend/postgres -run x -bench PollBacklog -benchtime 20000x
func BenchmarkPollBacklog(b *testing.B) {
	for _, mode := range []string{"put-many", "put-each"} {
		b.Run("sink="+mode, func(b *testing.B) {
			pool := testPool(b)
			s := intake.New(intake.WithQueue(newBackend(b, pool, testPrefix(b, pool))), intake.WithLogger(quiet), intake.WithQueueSize(4096))
			var handled atomic.Int64
			all := make(chan struct{})
			n := int64(b.N)
			s.Handle(func(context.Context, event.Event) error {
				if handled.Add(1) == n {
					close(all)
				}
				return nil
			}, intake.WithWorkers(8))
			fetch := poller.FetchFunc(func(ctx context.Context, cursor string) (poller.Page, error) {
				from, _ := strconv.Atoi(cursor)
				to := min(from+100, b.N)
				var pg poller.Page
				for i := from; i < to; i++ {
					pg.Events = append(pg.Events, event.Event{ID: strconv.Itoa(i), Type: "t", Payload: []byte(`{"n":1}`)})
				}
				pg.Next, pg.More = strconv.Itoa(to), to < b.N
				return pg, nil
			})
			var sink event.Sink = s
			if mode == "put-each" {
				sink = event.SinkFunc(s.Put) // hides PutMany
			}
			p := poller.New("backlog", fetch, poller.Every(time.Hour), poller.WithMaxPages(1<<20), poller.WithLogger(quiet))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			for errors.Is(s.Put(ctx, event.Event{Source: "warm", ID: "up"}), event.ErrNotRunning) {
				time.Sleep(time.Millisecond)
			}
			b.ResetTimer()
			start := time.Now()
			pdone := make(chan error, 1)
			go func() { pdone <- p.Run(ctx, sink) }()
			<-all
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
			cancel()
			<-pdone
			<-done
		})
	}
}
