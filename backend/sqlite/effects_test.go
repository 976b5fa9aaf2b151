package sqlite_test

import (
	"context"
	"database/sql"
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
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
	"github.com/intakehq/intake/internal/testenv"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/webhook"
)

// effectsChild is the service of the effects crash test: a stream on the
// SQLite file with a webhook endpoint (its address said on stdout) and a
// poller of the API (its cursor in the file), whose handler inserts one
// row per event into the user's table in the same file: in the same
// transaction as its ack (ack=tx), in one transaction with the acks of
// the deliveries its workers bring at once (ack=txbatch, HandleTxBatch),
// or committed on its own before a plain ack (ack=plain). It runs until
// killed.
func effectsChild(dbPath string) error {
	n, _ := strconv.Atoi(os.Getenv("INTAKE_EFFECTS_N"))
	b, err := sqlite.Open(dbPath)
	if err != nil {
		return err
	}
	s := intake.New(intake.WithQueue(b), intake.WithLogger(quiet), intake.WithQueueSize(2000))
	hook := webhook.New("provider", webhook.GitHub(secret), webhook.WithLogger(quiet), webhook.WithReplayGuard(nil))
	_, polled := intaketest.EffectsPlan(n)
	p := poller.New("provider", intaketest.PageFetch(polled, 100), poller.Every(5*time.Millisecond), poller.WithMaxPages(1000),
		poller.WithCheckpoint(b.Checkpoint()), poller.WithLogger(quiet))
	s.Add(hook, p)
	const insert = `INSERT INTO effects (id, by) VALUES (?, ?)`
	me := strconv.Itoa(os.Getpid())
	switch os.Getenv("INTAKE_EFFECTS_ACK") {
	case "tx":
		s.Handle(b.HandleTx(func(ctx context.Context, tx *sql.Tx, e event.Event) error {
			_, err := tx.ExecContext(ctx, insert, e.ID, me)
			return err
		}), intake.WithWorkers(4), intake.WithMaxAttempts(1000))
	case "txbatch":
		s.Handle(b.HandleTxBatch(32, func(ctx context.Context, tx *sql.Tx, events []event.Event) error {
			for _, e := range events {
				if _, err := tx.ExecContext(ctx, insert, e.ID, me); err != nil {
					return err
				}
			}
			return nil
		}), intake.WithWorkers(32), intake.WithMaxAttempts(1000))
	default:
		s.Handle(func(ctx context.Context, e event.Event) error {
			_, err := b.DB().ExecContext(ctx, insert, e.ID, me)
			return err
		}, intake.WithWorkers(4), intake.WithMaxAttempts(1000))
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

// TestCrashEffectsOnce: one service on SQLite takes 20,000 events (30%
// of them twice, by webhook and by poll) while it is SIGKILLed and
// restarted at random points, twelve times. A handler that inserts its
// row and acks in one transaction (HandleTx) leaves exactly one row per
// event; the same run with the insert committed on its own and a plain
// ack must leave duplicates, and says how many.
func TestCrashEffectsOnce(t *testing.T) {
	testenv.SkipUnlessLong(t)
	if testing.Short() {
		t.Skip("two runs of 20,000 events with the service killed")
	}
	n := 20_000
	if raceEnabled {
		n = 3_000 // the race detector slows the transpiled SQLite tenfold
	}
	for _, ack := range []string{"tx", "txbatch", "plain"} {
		t.Run(ack, func(t *testing.T) {
			missing, dups := crashEffects(t, ack, n)
			intaketest.EffectsVerdict(t, ack, missing, dups)
		})
	}
}

func crashEffects(t *testing.T, ack string, n int) (missing, dups int) {
	path := filepath.Join(t.TempDir(), "effects.db")
	db := openDB(t, path)
	if _, err := db.Exec(`CREATE TABLE effects (id TEXT NOT NULL, by TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d", seed)
	var (
		mu   sync.Mutex
		proc *exec.Cmd
		addr string
	)
	start := func() {
		cmd, out := intaketest.Child(t, "INTAKE_SQLITE_CHILD=effects", "INTAKE_DB="+path,
			"INTAKE_EFFECTS_ACK="+ack, "INTAKE_EFFECTS_N="+strconv.Itoa(n))
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

	// Send the webhooks as a provider does, retrying until a 2xx, 8 at a
	// time.
	hooks, _ := intaketest.EffectsPlan(n)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	// Until a 2xx, as a provider does (a 409 too is tried again: the
	// holder may still release what it claimed). A provider retries for
	// days: the budget is minutes, not a count of tries that a loaded
	// machine runs through sooner.
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

	// SIGKILL the service twelve times, at random points of the
	// webhooks' progress while the handlers write, and start it again
	// at once.
	const kills = 12
	began := time.Now()
	intaketest.KillDuringProgress(rng, kills, int64(len(hooks)), sending.Stored.Load, sending.Done, func() int { return countRows(t, db) }, func() {
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
	deadline := time.Now().Add(120 * time.Second)
	for {
		var rows, queued int
		if err := db.QueryRow(`SELECT (SELECT count(DISTINCT id) FROM effects),
			(SELECT count(*) FROM intake_keys WHERE state = 1 AND seq IS NOT NULL)`).Scan(&rows, &queued); err != nil {
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
	_ = proc.Process.Kill()
	_ = proc.Wait()
	mu.Unlock()
	var distinct, total int
	if err := db.QueryRow(`SELECT count(DISTINCT id), count(*) FROM effects`).Scan(&distinct, &total); err != nil {
		t.Fatal(err)
	}
	missing, dups = n-distinct, total-distinct
	t.Logf("ack=%s: %d events, %d webhooks, %d kills in %v; rows: %d missing, %d duplicates",
		ack, n, len(hooks), kills, time.Since(began).Round(time.Millisecond), missing, dups)
	return missing, dups
}

// countRows counts the rows of the user's table.
func countRows(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM effects`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
