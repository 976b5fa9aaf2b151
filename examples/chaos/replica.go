package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	goredis "github.com/redis/go-redis/v9"

	"github.com/intakehq/intake"
	intakenats "github.com/intakehq/intake/backend/nats"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/backend/redis"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/webhook"
)

// The replica's settings come from its environment.
const (
	envRole    = "CHAOS_ROLE" // "replica"
	envBackend = "CHAOS_BACKEND"
	envDB      = "CHAOS_DB" // DSN, Redis address or SQLite path: through the replica's link
	envPrefix  = "CHAOS_PREFIX"
	envAPI     = "CHAOS_API"  // the polled API's base URL
	envDir     = "CHAOS_DIR"  // the run's directory: histories, the cure file
	envProc    = "CHAOS_PROC" // this incarnation's name, "r1.3"
	envPort    = "CHAOS_PORT" // the webhook's port
	envAck     = "CHAOS_ACK"  // "tx" (a transactional ack, where the backend has one) or "plain"
)

// The campaign's constants, the same in every process.
const (
	source   = "provider" // the webhook and the poller: one source, so the keys match
	secret   = "whsec_chaos"
	cureFile = "cured" // once it exists, poison events are handled
)

// subs are the subscriptions every event goes to.
var subs = []string{"ledger", "mail"}

// sum is the hash of a payload the handler records and the checker
// compares with what was sent.
func sum(payload []byte) string {
	s := sha256.Sum256(payload)
	return hex.EncodeToString(s[:8])
}

// misbehaviour is how a handler call for (id, sub) at attempt misbehaves,
// drawn from the id: a poison event (both subscriptions: a permanent
// error until the campaign cures it, so it is dead-lettered, then
// replayed), a transient error, a panic, a slow call.
type misbehaviour struct {
	poison    bool
	failUntil int           // fail the attempts before this one
	panics    bool          // panic on the first attempt
	slow      time.Duration // on the first attempt
}

func misbehave(id, sub string) misbehaviour {
	h := fnv.New32a()
	h.Write([]byte(id))
	of := h.Sum32() % 1000
	h.Write([]byte(sub))
	c := h.Sum32() % 1000
	var m misbehaviour
	switch {
	case of < 3:
		m.poison = true
	case c < 10:
		m.failUntil = 3
	case c < 15:
		m.panics = true
	case c < 35:
		m.slow = time.Duration(100+c*40) * time.Millisecond
	}
	return m
}

// replica is one intake process of the campaign: a stream on the shared
// backend with the provider's webhook and the paired poller, two
// subscriptions whose handlers misbehave as drawn, and a history of
// every call. It runs until SIGTERM (a clean stop) or SIGKILL.
func replica() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	dir, proc := os.Getenv(envDir), os.Getenv(envProc)
	hist, err := OpenHistory(filepath.Join(dir, proc+".jsonl"), proc)
	if err != nil {
		return err
	}
	hist.Add(Record{Kind: KindStart})
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("proc", proc)
	prefix, db := os.Getenv(envPrefix), os.Getenv(envDB)

	var (
		queue  dedupe.Queue
		lease  poller.Lease
		cp     poller.Checkpoint
		effect func(sub string) intake.HandlerFunc // the handler's write and ack
	)
	insert := func(sub, params string) (string, func(e event.Event) []any) {
		return `INSERT INTO ` + prefix + `effects (id, sub, sum, proc) VALUES (` + params + `)`,
			func(e event.Event) []any { return []any{e.ID, sub, sum(e.Payload), proc} }
	}
	switch os.Getenv(envBackend) {
	case "postgres":
		var pg *postgres.Backend
		err := retry(ctx, func() (err error) { pg, err = postgres.Open(ctx, db, postgres.WithPrefix(prefix)); return err })
		if err != nil {
			return err
		}
		defer pg.Close()
		queue, lease, cp = pg, pg.Lease(), pg.Checkpoint()
		effect = func(sub string) intake.HandlerFunc {
			q, args := insert(sub, "$1, $2, $3, $4")
			return pg.HandleTx(func(ctx context.Context, tx pgx.Tx, e event.Event) error {
				_, err := tx.Exec(ctx, q, args(e)...)
				return err
			})
		}
	case "sqlite":
		sq, err := sqlite.Open(db, sqlite.WithPrefix(prefix))
		if err != nil {
			return err
		}
		defer sq.Close()
		if _, err := sq.DB().Exec(`CREATE TABLE IF NOT EXISTS ` + prefix + `effects (id TEXT, sub TEXT, sum TEXT, proc TEXT)`); err != nil {
			return err
		}
		queue, lease, cp = sq, sq.Lease(), sq.Checkpoint()
		effect = func(sub string) intake.HandlerFunc {
			q, args := insert(sub, "?, ?, ?, ?")
			return sq.HandleTx(func(ctx context.Context, tx *sql.Tx, e event.Event) error {
				_, err := tx.ExecContext(ctx, q, args(e)...)
				return err
			})
		}
	case "redis":
		client := goredis.NewClient(&goredis.Options{Addr: db})
		defer client.Close()
		var q *redis.Queue
		err := retry(ctx, func() (err error) {
			q, err = redis.NewQueue(ctx, client, redis.WithQueuePrefix(prefix+"q:"))
			return err
		})
		if err != nil {
			return err
		}
		defer q.Close()
		store := redis.New(client, redis.WithPrefix(prefix))
		queue, lease, cp = q, store.Lease(), store.Checkpoint()
		// No transactional ack: the effect is the done record itself.
		effect = func(string) intake.HandlerFunc { return func(context.Context, event.Event) error { return nil } }
	case "nats":
		nc, err := nats.Connect("nats://"+db, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.RetryOnFailedConnect(true))
		if err != nil {
			return err
		}
		defer nc.Close()
		var q *intakenats.Queue
		err = retry(ctx, func() (err error) { q, err = intakenats.NewQueue(ctx, nc, intakenats.WithName("CHAOS")); return err })
		if err != nil {
			return err
		}
		defer q.Close()
		var ps *intakenats.Pollers
		if err := retry(ctx, func() (err error) { ps, err = q.Pollers(ctx); return err }); err != nil {
			return err
		}
		queue, lease, cp = q, ps.Lease(), ps.Checkpoint()
		// No transactional ack: the effect is the done record itself.
		effect = func(string) intake.HandlerFunc { return func(context.Context, event.Event) error { return nil } }
	default:
		return fmt.Errorf("chaos: unknown backend %q", os.Getenv(envBackend))
	}
	if os.Getenv(envAck) == "plain" {
		// A plain ack: the effect is the done record, as with Redis.
		effect = func(string) intake.HandlerFunc { return func(context.Context, event.Event) error { return nil } }
	}

	s := intake.New(intake.WithQueue(queue), intake.WithLogger(logger), intake.WithQueueSize(2000))
	hook := webhook.New(source, webhook.Stripe(secret), webhook.WithLogger(logger))
	p := poller.New(source, apiFetch(os.Getenv(envAPI)), poller.Every(200*time.Millisecond), poller.WithMaxPages(20),
		poller.WithCheckpoint(cp), poller.WithLease(lease, 2*time.Second), poller.WithLogger(logger))
	s.Add(hook, p)
	for _, sub := range subs {
		s.Handle(recorded(hist, sub, dir, effect(sub)), intake.WithName(sub), intake.WithWorkers(8), intake.WithMaxAttempts(100),
			intake.WithRetryBackoff(50*time.Millisecond, 2*time.Second))
	}

	mux := http.NewServeMux()
	mux.Handle("/hook", hook)
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		queued, err1 := s.List(r.Context(), dedupe.Filter{State: dedupe.Queued, Limit: 1})
		dead, err2 := s.List(r.Context(), dedupe.Filter{State: dedupe.Dead, Limit: 1})
		if err := errors.Join(err1, err2); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		st := map[string]any{"queued": len(queued), "dead": len(dead)}
		if len(queued) > 0 {
			st["first"] = queued[0] // what a campaign that does not drain says
		}
		_ = json.NewEncoder(w).Encode(st)
	})
	var ln net.Listener
	if err := retry(ctx, func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:"+os.Getenv(envPort)); return err }); err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go replayDead(ctx, s, hist, dir)
	fmt.Println("ready")
	err = s.Run(ctx)
	_ = srv.Close()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// recorded wraps a subscription's effect: it records the call's start,
// misbehaves as drawn for the event, writes the effect, and records how
// the call ended.
func recorded(hist *History, sub, dir string, effect intake.HandlerFunc) intake.HandlerFunc {
	return func(ctx context.Context, e event.Event) error {
		att, _ := intake.Attempt(ctx)
		hist.Add(Record{Kind: KindBegin, ID: e.ID, Sub: sub, Attempt: att})
		m := misbehave(e.ID, sub)
		fail := func(err error, permanent bool) error {
			r := Record{Kind: KindFail, ID: e.ID, Sub: sub, Attempt: att, Err: err.Error()}
			if permanent {
				r.Target = "permanent"
			}
			hist.Add(r)
			return err
		}
		switch {
		case m.poison:
			if _, err := os.Stat(filepath.Join(dir, cureFile)); err != nil {
				return fail(intake.Permanent(errors.New("poison event")), true)
			}
		case att < m.failUntil:
			return fail(errors.New("transient failure"), false)
		case m.panics && att == 1:
			hist.Add(Record{Kind: KindFail, ID: e.ID, Sub: sub, Attempt: att, Err: "panic"})
			panic("chaos: a handler panics")
		case m.slow > 0 && att == 1:
			select {
			case <-time.After(m.slow):
			case <-ctx.Done():
				return fail(ctx.Err(), false)
			}
		}
		if err := effect(ctx, e); err != nil {
			return fail(err, false)
		}
		hist.Add(Record{Kind: KindDone, ID: e.ID, Sub: sub, Attempt: att, Sum: sum(e.Payload)})
		return nil
	}
}

// replayDead replays the dead letters once the campaign has cured the
// poison, as an operator would with `intake replay`.
func replayDead(ctx context.Context, s *intake.Stream, hist *History, dir string) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := os.Stat(filepath.Join(dir, cureFile)); err != nil {
			continue
		}
		dead, err := s.List(ctx, dedupe.Filter{State: dedupe.Dead, Limit: 100})
		if err != nil {
			continue
		}
		for _, r := range dead {
			if err := s.Replay(ctx, r.Key); err == nil {
				hist.Add(Record{Kind: KindReplay, ID: r.Event.ID})
			}
		}
	}
}

// apiFetch reads the campaign's polled API: GET /events?after=N.
func apiFetch(base string) poller.FetchFunc {
	client := &http.Client{Timeout: 10 * time.Second}
	return func(ctx context.Context, cursor string) (poller.Page, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events?after="+cursor, nil)
		if err != nil {
			return poller.Page{}, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return poller.Page{}, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return poller.Page{}, fmt.Errorf("chaos: API answered %s", resp.Status)
		}
		var page apiPage
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
			return poller.Page{}, err
		}
		out := poller.Page{Next: page.Next, More: page.More}
		for _, e := range page.Events {
			out.Events = append(out.Events, event.Event{ID: e.ID, Type: e.Type, Payload: e.Payload})
		}
		return out, nil
	}
}

// apiPage is the polled API's answer.
type apiPage struct {
	Events []apiEvent `json:"events"`
	Next   string     `json:"next"`
	More   bool       `json:"more"`
}

type apiEvent struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// retry calls fn until it succeeds or ctx ends: a replica restarted while
// its database is down waits for it.
func retry(ctx context.Context, fn func() error) error {
	for {
		err := fn()
		if err == nil {
			return nil
		}
		fmt.Fprintln(os.Stderr, "chaos: replica waits:", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
}
