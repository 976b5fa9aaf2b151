package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	goredis "github.com/redis/go-redis/v9"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
	intakeredis "github.com/intakehq/intake/backend/redis"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/examples/loadtest/internal/pgtest"
	"github.com/intakehq/intake/webhook"
)

// servers are the database servers the durable targets use; a nil one is
// not reachable and its targets are left out, with a note.
type servers struct {
	pg    *pgxpool.Pool
	dsn   string
	redis *goredis.Client
	notes []string
}

func connect(ctx context.Context, dsn, redisAddr string) *servers {
	s := &servers{dsn: dsn}
	if dsn != "" {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		pool, err := pgxpool.New(cctx, dsn)
		if err == nil {
			err = pool.Ping(cctx)
		}
		cancel()
		if err != nil {
			s.notes = append(s.notes, "PostgreSQL targets left out: "+err.Error())
			if pool != nil {
				pool.Close()
			}
		} else {
			s.pg = pool
		}
	}
	if redisAddr != "" {
		c := goredis.NewClient(&goredis.Options{Addr: redisAddr})
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := c.Ping(cctx).Err()
		cancel()
		if err != nil {
			s.notes = append(s.notes, "Redis target left out: "+err.Error())
			c.Close()
		} else {
			s.redis = c
		}
	}
	return s
}

func (s *servers) close() {
	if s.pg != nil {
		s.pg.Close()
	}
	if s.redis != nil {
		s.redis.Close()
	}
}

// counter counts what a target's consumer handled, by delivery id.
type counter struct {
	mu   sync.Mutex
	seen map[string]int
	last time.Time
}

func newCounter() *counter { return &counter{seen: map[string]int{}} }

func (c *counter) add(id string) {
	c.mu.Lock()
	c.seen[id]++
	c.last = time.Now()
	c.mu.Unlock()
}

// settle waits until every acknowledged delivery is handled (or limit
// passes) and says how many were handled twice or not at all, and when
// the last was handled.
func (c *counter) settle(acked map[string]bool, limit time.Duration) (twice, lost int, last time.Time) {
	deadline := time.Now().Add(limit)
	for {
		// Only when as many ids were handled as were acknowledged is the
		// set walked (under the lock the workers take): walking 1,000,000
		// ids every 10 ms held the workers and measured the harness.
		c.mu.Lock()
		missing := -1
		if len(c.seen) >= len(acked) {
			missing = 0
			for id := range acked {
				if c.seen[id] == 0 {
					missing++
				}
			}
		}
		c.mu.Unlock()
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range acked {
		switch n := c.seen[id]; {
		case n == 0:
			lost++
		case n > 1:
			twice++
		}
	}
	for id, n := range c.seen {
		if n > 1 && !acked[id] {
			twice++
		}
	}
	return twice, lost, c.last
}

// pgPrefix returns a table prefix of a round's own, and a function that
// drops its tables.
func pgPrefix(pool *pgxpool.Pool) (string, func()) {
	p := fmt.Sprintf("lt%d_", time.Now().UnixNano()%1e12)
	return p, func() { pgtest.DropPrefix(pool, p) }
}

// intakeStream runs a stream on q whose acking handler counts each event.
// With guard, the GitHub handler's replay guard is on, as by default: in
// q's database; without, it is off (the River receiver has none).
func intakeStream(q dedupe.Queue, c *counter, quiet *slog.Logger, guard bool) (*webhook.Handler, func()) {
	return intakeStreamWith(q, c, quiet, guard, nil, 16)
}

// intakeStreamWith is intakeStream whose handler runs fn before it
// counts an event (nil: it only counts).
func intakeStreamWith(q dedupe.Queue, c *counter, quiet *slog.Logger, guard bool, fn intake.HandlerFunc, workers int) (*webhook.Handler, func()) {
	s := intake.New(intake.WithLogger(quiet), intake.WithQueue(q), intake.WithQueueSize(1<<20), intake.WithDrainTimeout(time.Millisecond))
	opts := []webhook.Option{webhook.WithLogger(quiet)}
	if !guard {
		opts = append(opts, webhook.WithReplayGuard(nil))
	}
	h := webhook.New("github", webhook.GitHub(secret), opts...)
	s.Add(h)
	s.Handle(func(ctx context.Context, e event.Event) error {
		if fn != nil {
			if err := fn(ctx, e); err != nil {
				return err
			}
		}
		c.add(e.ID)
		return nil
	}, intake.WithWorkers(workers))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return h, func() { cancel(); <-done }
}

// roundRobin spreads requests over handlers, as a load balancer in front
// of replicas does.
type roundRobin struct {
	hs []http.Handler
	n  atomic.Uint64
}

func (rr *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rr.hs[rr.n.Add(1)%uint64(len(rr.hs))].ServeHTTP(w, r)
}

// durableTargets are the targets on real servers: intake on Postgres (one
// replica and three), on Redis, and a receiver built the way a user
// without intake would build it on River.
func durableTargets(srv *servers, quiet *slog.Logger) []target {
	var ts []target
	if srv.pg != nil {
		for _, v := range []struct {
			replicas int
			guard    bool
		}{{1, false}, {3, false}, {1, true}} {
			replicas := v.replicas
			name := "intake, Postgres queue"
			if replicas > 1 {
				name = fmt.Sprintf("intake, Postgres queue, %d replicas", replicas)
			}
			if v.guard {
				name += ", replay guard in Postgres"
			}
			ts = append(ts, target{name: name, setup: func() (http.Handler, *counter, func(), error) {
				prefix, drop := pgPrefix(srv.pg)
				c := newCounter()
				rr := &roundRobin{}
				var stops []func()
				for range replicas {
					b, err := postgres.Open(context.Background(), srv.dsn, postgres.WithPrefix(prefix))
					if err != nil {
						drop()
						return nil, nil, nil, err
					}
					h, stop := intakeStream(b, c, quiet, v.guard)
					rr.hs = append(rr.hs, h)
					stops = append(stops, func() { stop(); b.Close() })
				}
				return rr, c, func() {
					for _, stop := range stops {
						stop()
					}
					drop()
				}, nil
			}})
		}
		// A handler with an effect in the database: one row per event in
		// the user's table, committed on its own before a plain ack, or
		// with the ack in one transaction (HandleTx) or one batch
		// (HandleBatch), or with the acks of the deliveries the workers
		// bring at once (HandleTxBatch): exactly once.
		for _, mode := range []string{"plain", "tx", "batch", "txbatch"} {
			name := map[string]string{
				"plain":   "intake, Postgres queue, handler INSERT, then Ack",
				"tx":      "intake, Postgres queue, handler INSERT + AckTx, one tx",
				"batch":   "intake, Postgres queue, handler INSERT + ack, one batch",
				"txbatch": "intake, Postgres queue, handler INSERT + AckTx, tx per batch of 16",
			}[mode]
			ts = append(ts, target{name: name, setup: func() (http.Handler, *counter, func(), error) {
				// One pool, as an application has, for the queue and the
				// handler's writes alike, sized for the 16 workers (the
				// batched handler's 64 hold four transactions at most).
				ctx := context.Background()
				cfg, err := pgxpool.ParseConfig(srv.dsn)
				if err != nil {
					return nil, nil, nil, err
				}
				cfg.MaxConns = 24
				pool, err := pgxpool.NewWithConfig(ctx, cfg)
				if err != nil {
					return nil, nil, nil, err
				}
				prefix, drop := pgPrefix(srv.pg)
				b, err := postgres.New(ctx, pool, postgres.WithPrefix(prefix))
				if err == nil {
					_, err = pool.Exec(ctx, `CREATE TABLE `+prefix+`effects (id text NOT NULL, payload bytea)`)
				}
				if err != nil {
					if b != nil {
						b.Close()
					}
					pool.Close()
					drop()
					return nil, nil, nil, err
				}
				insert := `INSERT INTO ` + prefix + `effects (id, payload) VALUES ($1, $2)`
				fn := func(ctx context.Context, e event.Event) error {
					_, err := pool.Exec(ctx, insert, e.ID, e.Payload)
					return err
				}
				switch mode {
				case "tx":
					fn = b.HandleTx(func(ctx context.Context, tx pgx.Tx, e event.Event) error {
						_, err := tx.Exec(ctx, insert, e.ID, e.Payload)
						return err
					})
				case "batch":
					fn = b.HandleBatch(func(ctx context.Context, e event.Event, batch *pgx.Batch) error {
						batch.Queue(insert, e.ID, e.Payload)
						return nil
					})
				case "txbatch":
					fn = b.HandleTxBatch(16, func(ctx context.Context, tx pgx.Tx, events []event.Event) error {
						batch := &pgx.Batch{}
						for _, e := range events {
							batch.Queue(insert, e.ID, e.Payload)
						}
						return tx.SendBatch(ctx, batch).Close()
					})
				}
				c := newCounter()
				workers := 16
				if mode == "txbatch" {
					workers = 64 // four batches of 16 in flight
				}
				h, stop := intakeStreamWith(b, c, quiet, false, fn, workers)
				return h, c, func() { stop(); b.Close(); pool.Close(); drop() }, nil
			}})
		}
		ts = append(ts, target{name: "River: verify, Insert (unique by delivery), worker", setup: func() (http.Handler, *counter, func(), error) {
			return riverReceiver(srv.pg, quiet, false)
		}})
		ts = append(ts, target{name: "River: worker INSERT + JobCompleteTx, one tx", setup: func() (http.Handler, *counter, func(), error) {
			return riverReceiver(srv.pg, quiet, true)
		}})
	}
	if srv.redis != nil {
		ts = append(ts, target{name: "intake, Redis queue", setup: func() (http.Handler, *counter, func(), error) {
			prefix := fmt.Sprintf("{lt%d}:", time.Now().UnixNano())
			q, err := intakeredis.NewQueue(context.Background(), srv.redis, intakeredis.WithQueuePrefix(prefix))
			if err != nil {
				return nil, nil, nil, err
			}
			c := newCounter()
			h, stop := intakeStream(q, c, quiet, false)
			return h, c, func() {
				stop()
				q.Close()
				ctx := context.Background()
				iter := srv.redis.Scan(ctx, 0, prefix+"*", 1000).Iterator()
				for iter.Next(ctx) {
					srv.redis.Del(ctx, iter.Val())
				}
			}, nil
		}})
	}
	return ts
}

// WebhookArgs is the River job of one delivery: unique by its id.
type WebhookArgs struct {
	Delivery string `json:"delivery" river:"unique"`
	Event    string `json:"event"`
	Body     []byte `json:"body"`
}

// Kind implements river.JobArgs.
func (WebhookArgs) Kind() string { return "webhook" }

// webhookWorker handles a delivery: it counts it.
type webhookWorker struct {
	river.WorkerDefaults[WebhookArgs]
	c      *counter
	pool   *pgxpool.Pool
	effect *string // an INSERT of (delivery, body) to run with JobCompleteTx, or nil
}

func (w *webhookWorker) Work(ctx context.Context, job *river.Job[WebhookArgs]) error {
	if w.effect != nil {
		// The effect and the job's completion in one transaction:
		// River's exactly-once, JobCompleteTx.
		tx, err := w.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it is a no-op
		if _, err := tx.Exec(ctx, *w.effect, job.Args.Delivery, job.Args.Body); err != nil {
			return err
		}
		if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
			return err
		}
		if err := tx.Commit(ctx); err != nil {
			return err
		}
	}
	w.c.add(job.Args.Delivery)
	return nil
}

// riverClient makes a schema of its own (a random name, so that two runs
// on one server never share River's tables), migrates River into it, and
// returns a client whose workers count into c, tuned: 100 workers, a
// short fetch cooldown, completed jobs kept (so that uniqueness covers
// deliveries already handled, as intake's retention does), and a function
// that drops the schema once the client has stopped.
func riverClient(ctx context.Context, pool *pgxpool.Pool, c *counter, quiet *slog.Logger, effect bool) (*river.Client[pgx.Tx], func(), error) {
	var r [6]byte
	_, _ = rand.Read(r[:])
	schema := "intake_loadtest_river_" + hex.EncodeToString(r[:])
	drop := func() { _, _ = pool.Exec(context.Background(), `DROP SCHEMA IF EXISTS `+schema+` CASCADE`) }
	if _, err := pool.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		return nil, nil, err
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Schema: schema, Logger: quiet})
	if err != nil {
		drop()
		return nil, nil, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		drop()
		return nil, nil, err
	}
	w := &webhookWorker{c: c, pool: pool}
	if effect {
		if _, err := pool.Exec(ctx, `CREATE TABLE `+schema+`.effects (id text NOT NULL, payload bytea)`); err != nil {
			drop()
			return nil, nil, err
		}
		insert := `INSERT INTO ` + schema + `.effects (id, payload) VALUES ($1, $2)`
		w.effect = &insert
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, w)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema:            schema,
		Logger:            quiet,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 100}},
		Workers:           workers,
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		drop()
		return nil, nil, err
	}
	return client, drop, nil
}

// riverReceiver is the receiver a user without intake builds on River:
// verify the signature, Insert a job unique by the delivery id (a
// duplicate is answered 200), a worker handles it.
func riverReceiver(pool *pgxpool.Pool, quiet *slog.Logger, effect bool) (http.Handler, *counter, func(), error) {
	ctx := context.Background()
	c := newCounter()
	client, drop, err := riverClient(ctx, pool, c, quiet, effect)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := client.Start(ctx); err != nil {
		drop()
		return nil, nil, nil, err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := verified(w, r)
		if !ok {
			return
		}
		res, err := client.Insert(r.Context(), WebhookArgs{Delivery: r.Header.Get("X-GitHub-Delivery"), Event: r.Header.Get("X-GitHub-Event"), Body: body},
			&river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}})
		if err != nil {
			http.Error(w, "not stored", http.StatusServiceUnavailable)
			return
		}
		if res.UniqueSkippedAsDuplicate {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	})
	return h, c, func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = client.Stop(sctx)
		drop()
	}, nil
}

// writeTransactions returns the server's transaction id counter: the number of
// write transactions begun so far, each one a commit and a WAL flush (read
// and rolled-back ones take none). Unlike pg_stat_database it is exact at
// once; reading it takes one id, which the callers' differences include.
func writeTransactions(pool *pgxpool.Pool) int64 {
	var n int64
	_ = pool.QueryRow(context.Background(), `SELECT pg_current_xact_id()::text::bigint`).Scan(&n)
	return n
}

// sqliteEffects is a stream on an SQLite queue of its own (in dir) whose
// handler writes one row per event into the same database in the
// transaction that acks it (mode "tx": HandleTx, 16 workers) or a batch
// of up to 16 (mode "txbatch": HandleTxBatch, 64 workers), or does
// nothing (mode "": 16 workers, the default).
func sqliteEffects(dir string, quiet *slog.Logger, mode string) func() (http.Handler, *counter, func(), error) {
	return func() (http.Handler, *counter, func(), error) {
		b, err := sqlite.Open(filepath.Join(dir, fmt.Sprintf("effects-%d.db", time.Now().UnixNano())))
		if err != nil {
			return nil, nil, nil, err
		}
		c := newCounter()
		if mode == "" {
			h, stop := intakeStreamWith(b, c, quiet, false, nil, 16)
			return h, c, func() { stop(); b.Close() }, nil
		}
		if _, err := b.DB().Exec(`CREATE TABLE effects (id TEXT NOT NULL, payload BLOB)`); err != nil {
			b.Close()
			return nil, nil, nil, err
		}
		insert := func(ctx context.Context, tx *sql.Tx, e event.Event) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO effects (id, payload) VALUES (?, ?)`, e.ID, e.Payload)
			return err
		}
		fn, workers := b.HandleTx(insert), 16
		if mode == "txbatch" {
			fn, workers = b.HandleTxBatch(16, func(ctx context.Context, tx *sql.Tx, events []event.Event) error {
				for _, e := range events {
					if err := insert(ctx, tx, e); err != nil {
						return err
					}
				}
				return nil
			}), 64
		}
		h, stop := intakeStreamWith(b, c, quiet, false, fn, workers)
		return h, c, func() { stop(); b.Close() }, nil
	}
}
