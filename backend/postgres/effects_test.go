package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
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

// effectsChild is one replica of the effects crash test: a stream on the
// shared tables with a webhook endpoint (its address said on stdout) and
// the poller of the shared API (one leader at a time, its cursor in
// Postgres), whose handler inserts one row per event into the user's
// table: in the same transaction as its ack (ack=tx), or committed on
// its own before a plain ack (ack=plain), or queued in one batch with
// its ack (ack=batch, HandleBatch), or written with the acks of the
// deliveries its workers bring at once in one transaction (ack=txbatch,
// HandleTxBatch). It runs until killed.
func effectsChild(prefix string) error {
	ctx := context.Background()
	n, _ := strconv.Atoi(os.Getenv("INTAKE_EFFECTS_N"))
	table := prefix + "effects"
	pg, err := postgres.Open(ctx, dsn(), postgres.WithPrefix(prefix))
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dsn())
	if err != nil {
		return err
	}
	s := intake.New(intake.WithQueue(pg), intake.WithLogger(quiet), intake.WithQueueSize(2000))
	hook := webhook.New("provider", webhook.GitHub(secret), webhook.WithLogger(quiet), webhook.WithReplayGuard(nil))
	_, polled := intaketest.EffectsPlan(n)
	p := poller.New("provider", intaketest.PageFetch(polled, 100), poller.Every(5*time.Millisecond), poller.WithMaxPages(1000),
		poller.WithCheckpoint(pg.Checkpoint()), poller.WithLease(pg.Lease(), time.Second), poller.WithLogger(quiet))
	s.Add(hook, p)
	insert := `INSERT INTO ` + table + ` (id, by) VALUES ($1, $2)`
	me := strconv.Itoa(os.Getpid())
	switch os.Getenv("INTAKE_EFFECTS_ACK") {
	case "tx":
		s.Handle(pg.HandleTx(func(ctx context.Context, tx pgx.Tx, e event.Event) error {
			_, err := tx.Exec(ctx, insert, e.ID, me)
			return err
		}), intake.WithWorkers(8), intake.WithMaxAttempts(1000))
	case "batch":
		s.Handle(pg.HandleBatch(func(ctx context.Context, e event.Event, batch *pgx.Batch) error {
			batch.Queue(insert, e.ID, me)
			return nil
		}), intake.WithWorkers(8), intake.WithMaxAttempts(1000))
	case "txbatch":
		s.Handle(pg.HandleTxBatch(32, func(ctx context.Context, tx pgx.Tx, events []event.Event) error {
			b := &pgx.Batch{}
			for _, e := range events {
				b.Queue(insert, e.ID, me)
			}
			return tx.SendBatch(ctx, b).Close()
		}), intake.WithWorkers(32), intake.WithMaxAttempts(1000))
	default:
		s.Handle(func(ctx context.Context, e event.Event) error {
			_, err := pool.Exec(ctx, insert, e.ID, me)
			return err
		}, intake.WithWorkers(8), intake.WithMaxAttempts(1000))
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

// TestCrashEffectsOnce: three replica processes on one Postgres take
// 20,000 events (30% of them twice, by webhook and by poll) while they
// are SIGKILLed and restarted at random, twelve times. A handler
// that inserts its row and acks in one transaction (HandleTx, one batch:
// HandleBatch, or one transaction for many events: HandleTxBatch) leaves
// exactly one row per event; the same run
// with the insert committed on its own and a plain ack must leave
// duplicates (so the test can fail), and says how many.
func TestCrashEffectsOnce(t *testing.T) {
	testenv.SkipUnlessLong(t)
	if testing.Short() {
		t.Skip("two runs of 20,000 events with replicas killed")
	}
	n := 20_000
	if raceEnabled {
		n = 4_000 // the race detector slows the replicas tenfold
	}
	for _, ack := range []string{"tx", "batch", "txbatch", "plain"} {
		t.Run(ack, func(t *testing.T) {
			missing, dups := crashEffects(t, ack, n)
			intaketest.EffectsVerdict(t, ack, missing, dups)
		})
	}
}

// crashEffects runs the workload on three replicas with ack mode ack,
// killing and restarting them until every event has its row, and returns
// how many events have no row and how many rows are duplicates.
func crashEffects(t *testing.T, ack string, n int) (missing, dups int) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	newBackend(t, pool, prefix) // the tables, before the replicas race to make them
	table := prefix + "effects"
	if _, err := pool.Exec(context.Background(), `CREATE TABLE `+table+` (id text NOT NULL, by text NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+table) })
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)

	const replicas = 3
	var (
		mu    sync.Mutex
		procs [replicas]*exec.Cmd
		urls  [replicas]string
	)
	start := func(i int) {
		cmd, out := intaketest.Child(t, "INTAKE_PG_CHILD=effects", "INTAKE_PG_PREFIX="+prefix,
			"INTAKE_EFFECTS_ACK="+ack, "INTAKE_EFFECTS_N="+strconv.Itoa(n))
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
	pick := func(i int) string {
		mu.Lock()
		defer mu.Unlock()
		for j := range replicas {
			if u := urls[(i+j)%replicas]; u != "" {
				return u
			}
		}
		return ""
	}

	// Send the webhooks as a provider does, retrying until a 2xx, 16 at
	// a time. A 409 is not a 2xx: the replica holding the event may still
	// release it (its queue full), and a sender that stopped there lost it.
	hooks, _ := intaketest.EffectsPlan(n)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	sending := intaketest.SendAll(len(hooks), 16, func(i int) bool {
		return sendUntilStoredAt(client, func() string { return pick(i) }, hooks[i])
	})

	// Kill a random replica twelve times, at random points of the
	// webhooks' progress while the handlers write, and start it again
	// at once; then let the replicas finish.
	const kills = 12
	began := time.Now()
	intaketest.KillDuringProgress(rng, kills, int64(len(hooks)), sending.Stored.Load, sending.Done, func() int { return countRows(t, pool, table) }, func() {
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
	deadline := time.Now().Add(120 * time.Second)
	for {
		var rows, queued int
		if err := pool.QueryRow(context.Background(), `SELECT (SELECT count(DISTINCT id) FROM `+table+`),
			(SELECT count(*) FROM `+prefix+`keys WHERE state = 1 AND seq IS NOT NULL)`).Scan(&rows, &queued); err != nil {
			t.Fatal(err)
		}
		if rows == n && queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Logf("after 120 s: %d of %d events have a row, %d still queued", rows, n, queued)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	for _, cmd := range procs {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	mu.Unlock()
	var distinct, total int
	if err := pool.QueryRow(context.Background(), `SELECT count(DISTINCT id), count(*) FROM `+table).Scan(&distinct, &total); err != nil {
		t.Fatal(err)
	}
	missing, dups = n-distinct, total-distinct
	if missing > 0 {
		explainMissing(t, pool, table, prefix, n)
	}
	t.Logf("ack=%s: %d events, %d webhooks, %d kills in %v; rows: %d missing, %d duplicates",
		ack, n, len(hooks), kills, time.Since(began).Round(time.Millisecond), missing, dups)
	return missing, dups
}

// sendUntilStoredAt posts a signed webhook to the replica url() names
// until it is stored (202) or known (200), as a provider retries: a
// refused connection, a 409 or a 5xx is tried again.
// The budget is minutes (a provider retries for days), not a count of
// tries that a loaded machine runs through sooner.
func sendUntilStoredAt(client *http.Client, url func() string, id string) bool {
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if u := url(); u != "" && sendUntilStoredOnce(client, u, id) {
			return true
		}
	}
	return false
}

// countRows counts the rows of the user's table.
func countRows(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// explainMissing says which events have no row, and in which state the
// queue keeps each (dead with its failure, queued, or not held: committed
// without its effect, or never stored), so that a failure names its cause.
func explainMissing(t *testing.T, pool *pgxpool.Pool, table, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	have := map[string]bool{}
	rows, err := pool.Query(ctx, `SELECT DISTINCT id FROM `+table)
	if err != nil {
		t.Logf("explain: %v", err)
		return
	}
	for rows.Next() {
		var id string
		if rows.Scan(&id) == nil {
			have[id] = true
		}
	}
	rows.Close()
	held := map[string]string{} // event id → state and failure, for the events the queue holds
	recs, err := pool.Query(ctx, `SELECT state, attempts, coalesce(failure, ''), event FROM `+prefix+`keys WHERE seq IS NOT NULL`)
	if err != nil {
		t.Logf("explain: %v", err)
		return
	}
	for recs.Next() {
		var state, attempts int
		var failure, enc []byte
		if recs.Scan(&state, &attempts, &failure, &enc) != nil {
			continue
		}
		var e event.Event
		if e.UnmarshalBinary(enc) == nil {
			held[e.ID] = fmt.Sprintf("state %d (1 queued, 3 dead), %d attempts, failure %s", state, attempts, failure)
		}
	}
	recs.Close()
	shown := 0
	for i := range n {
		id := fmt.Sprintf("evt_%05d", i)
		if have[id] || shown >= 10 {
			continue
		}
		shown++
		why, ok := held[id]
		if !ok {
			why = "not held by the queue: " + keyState(ctx, pool, prefix, event.Key("provider", id))
		}
		t.Errorf("missing %s: %s", id, why)
	}
}

// keyState says what the keys table has of key: committed (state 2) with
// no row of its effect is an effect lost; no row at all, an event never
// stored.
func keyState(ctx context.Context, pool *pgxpool.Pool, prefix, key string) string {
	sum := sha256.Sum256([]byte(key))
	var state int
	var holder *string
	var expires time.Time
	err := pool.QueryRow(ctx, `SELECT state, holder, expires_at FROM `+prefix+`keys WHERE hash = $1`, sum[:]).Scan(&state, &holder, &expires)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return "its key has no row: never stored"
	case err != nil:
		return err.Error()
	}
	h := "none"
	if holder != nil {
		h = *holder
	}
	return fmt.Sprintf("its key is in state %d (2 done: committed without its effect), holder %s, until %v", state, h, expires.Format(time.RFC3339))
}
