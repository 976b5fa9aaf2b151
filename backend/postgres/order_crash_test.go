package postgres_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
	"github.com/intakehq/intake/internal/testenv"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/webhook"
)

// orderChild is one replica of the ordering crash test: a stream on the
// shared tables, ordered by object (intaketest.OrderPlan's ids) unless
// INTAKE_ORDER_UNORDERED is set, skipping stale versions, with a webhook
// endpoint (its address said on stdout) and the shared API's poller. Its
// handler records each handling in the user's tables: the event, its
// place in the queue's stored order (its row's seq), when it began and
// ended by the database's clock, and the object's applied version, with
// a count of versions applied over a newer one, written in the
// transaction of its ack (HandleTx, which records the version applied in
// it too). It takes 0–20 ms. It runs until killed.
func orderChild(prefix string) error {
	ctx := context.Background()
	objects, _ := strconv.Atoi(os.Getenv("INTAKE_ORDER_OBJECTS"))
	per, _ := strconv.Atoi(os.Getenv("INTAKE_ORDER_PER"))
	pg, err := postgres.Open(ctx, dsn(), postgres.WithPrefix(prefix))
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dsn())
	if err != nil {
		return err
	}
	s := intake.New(intake.WithQueue(pg), intake.WithLogger(quiet), intake.WithQueueSize(4000),
		intake.WithOrderKey(intaketest.OrderKeyOfID), intake.WithVersion(intaketest.VersionOfID))
	hook := webhook.New("provider", webhook.GitHub(secret), webhook.WithLogger(quiet), webhook.WithReplayGuard(nil))
	_, polled := intaketest.OrderPlan(objects, per, rand.New(rand.NewPCG(0, 0)))
	p := poller.New("provider", intaketest.PageFetch(polled, 100), poller.Every(5*time.Millisecond), poller.WithMaxPages(1000),
		poller.WithCheckpoint(pg.Checkpoint()), poller.WithLease(pg.Lease(), time.Second), poller.WithLogger(quiet))
	s.Add(hook, p)
	me := strconv.Itoa(os.Getpid())
	handler := func(sub string) intake.HandlerFunc {
		return pg.HandleTx(func(ctx context.Context, tx pgx.Tx, e event.Event) error {
			obj := intaketest.OrderKeyOfID(e)
			v, _ := intaketest.VersionOfID(e)
			sum := sha256.Sum256([]byte(e.Key()))
			var run int64
			err := pool.QueryRow(ctx, `INSERT INTO `+prefix+`runs (sub, obj, id, seq, pid, started)
				SELECT $1, $2, $3, seq, $5, clock_timestamp() FROM `+prefix+`keys WHERE hash = $4 RETURNING run`, sub, obj, e.ID, sum[:], me).Scan(&run)
			if err != nil {
				return err
			}
			time.Sleep(time.Duration(rand.IntN(20_000)) * time.Microsecond)
			if sub == "latest" {
				if _, err := tx.Exec(ctx, `INSERT INTO `+prefix+`applied AS a (obj, v) VALUES ($1, $2)
					ON CONFLICT (obj) DO UPDATE SET stale = a.stale + (EXCLUDED.v < a.v)::int, v = EXCLUDED.v`, obj, v); err != nil {
					return err
				}
			}
			_, err = pool.Exec(ctx, `UPDATE `+prefix+`runs SET ended = clock_timestamp() WHERE run = $1`, run)
			return err
		})
	}
	// "all" handles every event; "latest" skips a version older than the
	// one it applied.
	for _, sub := range []string{"all", "latest"} {
		opts := []intake.SubscribeOption{intake.WithName(sub), intake.WithWorkers(16), intake.WithMaxAttempts(1000)}
		if sub == "latest" {
			opts = append(opts, intake.WithSkipStale())
		}
		if os.Getenv("INTAKE_ORDER_UNORDERED") != "" {
			opts = append(opts, intake.WithUnordered())
		}
		s.Handle(handler(sub), opts...)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(ln, hook) }()
	go func() { _ = s.Run(ctx) }()
	fmt.Println("http://" + ln.Addr().String())
	select {}
}

// TestCrashOrdered: three replica processes on one Postgres take 1,000
// objects × 20 events (30% of them twice, by webhook and by poll), the
// webhooks sent shuffled to random replicas, handlers taking 0–20 ms,
// while replicas are SIGKILLed and restarted eight times. Subscription
// "all" handles every event, "latest" skips stale versions. For every
// object in each, no two handlings overlap (one killed with its process
// ends there) and every handling comes in stored order (its row's seq);
// in "latest", the last version applied is the highest sent, none applied
// over a newer one. The same run unordered must show overlaps, so the
// test can fail.
func TestCrashOrdered(t *testing.T) {
	testenv.SkipUnlessLong(t)
	if testing.Short() {
		t.Skip("two runs of 20,000 events with replicas killed")
	}
	objects, per := 1000, 20
	if raceEnabled {
		objects = 200 // the race detector slows the replicas tenfold
	}
	for _, unordered := range []bool{false, true} {
		t.Run(map[bool]string{false: "ordered", true: "unordered"}[unordered], func(t *testing.T) {
			crashOrdered(t, objects, per, unordered).Check(t, objects, per, unordered)
		})
	}
}

func crashOrdered(t *testing.T, objects, per int, unordered bool) intaketest.OrderVerdict {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	newBackend(t, pool, prefix) // the tables, before the replicas race to make them
	ctx := context.Background()
	for _, ddl := range []string{
		`CREATE TABLE ` + prefix + `runs (run bigserial PRIMARY KEY, sub text NOT NULL, obj text NOT NULL, id text NOT NULL, seq bigint, pid text NOT NULL,
			started timestamptz NOT NULL, ended timestamptz)`,
		`CREATE TABLE ` + prefix + `applied (obj text PRIMARY KEY, v bigint NOT NULL, stale int NOT NULL DEFAULT 0)`,
	} {
		if _, err := pool.Exec(ctx, ddl); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+prefix+`runs, `+prefix+`applied`) })
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	n := objects * per

	const replicas = 3
	var (
		mu    sync.Mutex
		procs [replicas]*exec.Cmd
		urls  [replicas]string
	)
	env := []string{"INTAKE_PG_CHILD=order", "INTAKE_PG_PREFIX=" + prefix,
		"INTAKE_ORDER_OBJECTS=" + strconv.Itoa(objects), "INTAKE_ORDER_PER=" + strconv.Itoa(per)}
	if unordered {
		env = append(env, "INTAKE_ORDER_UNORDERED=1")
	}
	start := func(i int) {
		cmd, out := intaketest.Child(t, env...)
		url := intaketest.FirstLine(t, out, 20*time.Second)
		if !strings.HasPrefix(url, "http://") {
			t.Fatalf("replica said %q", url)
		}
		mu.Lock()
		procs[i], urls[i] = cmd, url
		mu.Unlock()
	}
	for i := range replicas {
		start(i)
	}
	pick := func() string {
		mu.Lock()
		defer mu.Unlock()
		i := rand.IntN(replicas)
		for j := range replicas {
			if u := urls[(i+j)%replicas]; u != "" {
				return u
			}
		}
		return ""
	}
	hooks, _ := intaketest.OrderPlan(objects, per, rng)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	sending := intaketest.SendAll(len(hooks), 16, func(i int) bool {
		return sendUntilStoredAt(client, pick, hooks[i])
	})
	handled := func() int {
		var k int
		if err := pool.QueryRow(ctx, `SELECT count(DISTINCT id) FROM `+prefix+`runs WHERE ended IS NOT NULL`).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	const kills = 8
	began := time.Now()
	intaketest.KillDuringProgress(rng, kills, int64(len(hooks)), sending.Stored.Load, sending.Done, handled, func() {
		i := rng.IntN(replicas)
		mu.Lock()
		cmd := procs[i]
		urls[i] = ""
		mu.Unlock()
		_ = cmd.Process.Kill() // SIGKILL
		_ = cmd.Wait()
		start(i)
	})
	<-sending.Done
	if f := sending.Failed.Load(); f > 0 {
		t.Fatalf("%d webhooks never stored", f)
	}
	// Every event committed (handled to its end, or skipped as stale),
	// the queue empty.
	// As long as the sending took, twice, and three minutes at least: a
	// loaded machine drains slower, and its sending said how much.
	wait := max(180*time.Second, 2*time.Since(began))
	deadline := time.Now().Add(wait)
	for {
		var done, queued int
		if err := pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE state = 2), count(*) FILTER (WHERE state <> 2 AND seq IS NOT NULL) FROM `+prefix+`keys`).Scan(&done, &queued); err != nil {
			t.Fatal(err)
		}
		if done == n && queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d of %d events committed, %d still queued or dead", wait.Round(time.Second), done, n, queued)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	for _, cmd := range procs {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	mu.Unlock()

	rows, err := pool.Query(ctx, `SELECT sub || '/' || obj, coalesce(seq, -1), started, ended FROM `+prefix+`runs`)
	if err != nil {
		t.Fatal(err)
	}
	var hs []intaketest.Handling
	var v intaketest.OrderVerdict
	for rows.Next() {
		var h intaketest.Handling
		var ended *time.Time
		if err := rows.Scan(&h.Key, &h.N, &h.Start, &ended); err != nil {
			t.Fatal(err)
		}
		if ended != nil {
			h.End = *ended
		}
		hs = v.Record(hs, h)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	v.Handlings = len(hs)
	v.Overlaps, v.Backwards = intaketest.CheckOrder(hs)
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(stale), 0), count(*) FILTER (WHERE v <> $1) + ($2 - count(*)) FROM `+prefix+`applied`,
		per-1, objects).Scan(&v.Stale, &v.Behind); err != nil && err != pgx.ErrNoRows {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT id) FILTER (WHERE sub = 'all'), count(DISTINCT id) FILTER (WHERE sub = 'latest') FROM `+prefix+`runs`).Scan(&v.All, &v.Latest); err != nil {
		t.Fatal(err)
	}
	t.Logf("unordered=%v: %d objects × %d events, %d webhooks, %d kills in %v: %+v (latest skipped the rest as stale)",
		unordered, objects, per, len(hooks), kills, time.Since(began).Round(time.Millisecond), v)
	return v
}
