package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
	"github.com/intakehq/intake/internal/testenv"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/webhook"
)

// orderChild is the service of the ordering crash test on SQLite: a
// stream ordered by object (intaketest.OrderPlan's ids) unless
// INTAKE_ORDER_UNORDERED is set, with a webhook endpoint (its address
// said on stdout) and the API's poller, and two subscriptions: "all"
// handles every event, "latest" skips stale versions. Each handling is
// recorded in the same file (its event's seq in the queue, when it began
// and ended) and "latest" records the object's applied version, counting
// versions applied over a newer one; the end, the effect and the ack
// commit in one transaction (AckTx, which records the version applied in
// it too). Handlers take 0–20 ms. It runs until killed.
func orderChild(dbPath string) error {
	objects, _ := strconv.Atoi(os.Getenv("INTAKE_ORDER_OBJECTS"))
	per, _ := strconv.Atoi(os.Getenv("INTAKE_ORDER_PER"))
	b, err := sqlite.Open(dbPath)
	if err != nil {
		return err
	}
	s := intake.New(intake.WithQueue(b), intake.WithLogger(quiet), intake.WithQueueSize(4000),
		intake.WithOrderKey(intaketest.OrderKeyOfID), intake.WithVersion(intaketest.VersionOfID))
	hook := webhook.New("provider", webhook.GitHub(secret), webhook.WithLogger(quiet), webhook.WithReplayGuard(nil))
	_, polled := intaketest.OrderPlan(objects, per, rand.New(rand.NewPCG(0, 0)))
	p := poller.New("provider", intaketest.PageFetch(polled, 100), poller.Every(5*time.Millisecond), poller.WithMaxPages(1000),
		poller.WithCheckpoint(b.Checkpoint()), poller.WithLogger(quiet))
	s.Add(hook, p)
	db := b.DB()
	handler := func(sub string) intake.HandlerFunc {
		return func(ctx context.Context, e event.Event) error {
			obj := intaketest.OrderKeyOfID(e)
			v, _ := intaketest.VersionOfID(e)
			var run int64
			err := db.QueryRowContext(ctx, `INSERT INTO runs (sub, obj, id, seq, started)
				SELECT ?, ?, ?, seq, ? FROM intake_keys WHERE key = ? RETURNING run`, sub, obj, e.ID, time.Now().UnixNano(), []byte(e.Key())).Scan(&run)
			if err != nil {
				return err
			}
			time.Sleep(time.Duration(rand.IntN(20_000)) * time.Microsecond)
			// The effect, the end and the ack in one transaction (AckTx
			// records the version applied in it too); SQLite has one
			// writer, so the 0–20 ms are spent before it begins.
			d, _ := dedupe.DeliveryFromContext(ctx)
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if err := b.AckTx(ctx, tx, d); err != nil {
				if errors.Is(err, dedupe.ErrAlreadyAcked) {
					return nil
				}
				return err
			}
			if sub == "latest" {
				if _, err := tx.ExecContext(ctx, `INSERT INTO applied AS a (obj, v) VALUES (?1, ?2)
					ON CONFLICT (obj) DO UPDATE SET stale = a.stale + (excluded.v < a.v), v = excluded.v`, obj, v); err != nil {
					return err
				}
			}
			if _, err = tx.ExecContext(ctx, `UPDATE runs SET ended = ? WHERE run = ?`, time.Now().UnixNano(), run); err != nil {
				return err
			}
			return tx.Commit()
		}
	}
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
	go func() { _ = s.Run(context.Background()) }()
	fmt.Println("ADDR " + ln.Addr().String())
	select {}
}

// TestCrashOrdered: one service on SQLite takes 500 objects × 20
// events (30% twice, by webhook and by poll), the webhooks shuffled,
// while it is SIGKILLed and restarted six times. For every object in each
// subscription no two handlings overlap and every handling comes in
// stored order; in "latest" the last version applied is the highest
// sent, none applied over a newer one. Unordered, handlings overlap.
func TestCrashOrdered(t *testing.T) {
	testenv.SkipUnlessLong(t)
	if testing.Short() {
		t.Skip("two runs of 10,000 events with the service killed")
	}
	objects, per := 500, 20
	if raceEnabled {
		objects = 50 // the race detector slows the transpiled SQLite tenfold
	}
	for _, unordered := range []bool{false, true} {
		t.Run(map[bool]string{false: "ordered", true: "unordered"}[unordered], func(t *testing.T) {
			crashOrdered(t, objects, per, unordered).Check(t, objects, per, unordered)
		})
	}
}

func crashOrdered(t *testing.T, objects, per int, unordered bool) intaketest.OrderVerdict {
	path := filepath.Join(t.TempDir(), "order.db")
	db := openDB(t, path)
	for _, ddl := range []string{
		`CREATE TABLE runs (run INTEGER PRIMARY KEY, sub TEXT NOT NULL, obj TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER, started INTEGER NOT NULL, ended INTEGER)`,
		`CREATE TABLE applied (obj TEXT PRIMARY KEY, v INTEGER NOT NULL, stale INTEGER NOT NULL DEFAULT 0)`,
	} {
		if _, err := db.Exec(ddl); err != nil {
			t.Fatal(err)
		}
	}
	open(t, path).Close() // the queue's tables, before the service reads them
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	n := objects * per
	var (
		mu   sync.Mutex
		proc *exec.Cmd
		addr string
	)
	env := []string{"INTAKE_SQLITE_CHILD=order", "INTAKE_DB=" + path,
		"INTAKE_ORDER_OBJECTS=" + strconv.Itoa(objects), "INTAKE_ORDER_PER=" + strconv.Itoa(per)}
	if unordered {
		env = append(env, "INTAKE_ORDER_UNORDERED=1")
	}
	start := func() {
		cmd, out := intaketest.Child(t, env...)
		line := intaketest.FirstLine(t, out, time.Minute)
		a, ok := strings.CutPrefix(line, "ADDR ")
		if !ok {
			t.Fatalf("child said %q", line)
		}
		mu.Lock()
		proc, addr = cmd, a
		mu.Unlock()
	}
	start()
	hooks, _ := intaketest.OrderPlan(objects, per, rng)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	sending := intaketest.SendAll(len(hooks), 8, func(i int) bool {
		for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			a := addr
			mu.Unlock()
			if a != "" && post(client, a, hooks[i]) {
				return true
			}
		}
		return false
	})
	count := func(q string) int {
		var k int
		if err := db.QueryRow(q).Scan(&k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	const kills = 6
	began := time.Now()
	intaketest.KillDuringProgress(rng, kills, int64(len(hooks)), sending.Stored.Load, sending.Done,
		func() int { return count(`SELECT count(*) FROM runs WHERE ended IS NOT NULL`) }, func() {
			mu.Lock()
			cmd := proc
			addr = ""
			mu.Unlock()
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			start()
		})
	<-sending.Done
	if f := sending.Failed.Load(); f > 0 {
		t.Fatalf("%d webhooks never stored", f)
	}
	// As long as the sending took, twice, and three minutes at least: a
	// loaded machine drains slower, and its sending said how much.
	wait := max(180*time.Second, 2*time.Since(began))
	deadline := time.Now().Add(wait)
	for {
		done := count(`SELECT count(*) FROM intake_keys WHERE state = 2`)
		queued := count(`SELECT count(*) FROM intake_keys WHERE state <> 2 AND seq IS NOT NULL`)
		if done == n && queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d of %d events committed, %d still queued or dead", wait.Round(time.Second), done, n, queued)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	_ = proc.Process.Kill()
	_ = proc.Wait()
	mu.Unlock()

	rows, err := db.Query(`SELECT sub || '/' || obj, coalesce(seq, -1), started, ended FROM runs`)
	if err != nil {
		t.Fatal(err)
	}
	var hs []intaketest.Handling
	var v intaketest.OrderVerdict
	for rows.Next() {
		var h intaketest.Handling
		var started int64
		var ended *int64
		if err := rows.Scan(&h.Key, &h.N, &started, &ended); err != nil {
			t.Fatal(err)
		}
		h.Start = time.Unix(0, started)
		if ended != nil {
			h.End = time.Unix(0, *ended)
		}
		hs = v.Record(hs, h)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	v.Handlings = len(hs)
	v.Overlaps, v.Backwards = intaketest.CheckOrder(hs)
	v.All = count(`SELECT count(DISTINCT id) FROM runs WHERE sub = 'all'`)
	v.Latest = count(`SELECT count(DISTINCT id) FROM runs WHERE sub = 'latest'`)
	v.Stale = count(`SELECT coalesce(sum(stale), 0) FROM applied`)
	v.Behind = count(fmt.Sprintf(`SELECT (SELECT count(*) FROM applied WHERE v <> %d) + %d - (SELECT count(*) FROM applied)`, per-1, objects))
	t.Logf("unordered=%v: %d objects × %d events, %d webhooks, %d kills in %v: %+v (latest skipped the rest as stale)",
		unordered, objects, per, len(hooks), kills, time.Since(began).Round(time.Millisecond), v)
	return v
}
