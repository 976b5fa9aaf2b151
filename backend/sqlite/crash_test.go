package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
	"github.com/intakehq/intake/webhook"
)

const secret = "It's a Secret to Everybody"

// TestMain runs the test binary as the crash test's child process when
// INTAKE_SQLITE_CHILD is set.
func TestMain(m *testing.M) {
	if mode := os.Getenv("INTAKE_SQLITE_CHILD"); mode == "hold" || mode == "handle" {
		if err := recoveryChild(os.Getenv("INTAKE_DB"), os.Getenv("INTAKE_HANDLED"), mode); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("INTAKE_SQLITE_CHILD") == "ackwait" {
		if err := ackWaitChild(os.Getenv("INTAKE_DB"), os.Getenv("INTAKE_HANDLED")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("INTAKE_SQLITE_CHILD") == "fetch" {
		if err := fetchChild(os.Getenv("INTAKE_DB"), os.Getenv("INTAKE_HANDLED"), os.Getenv("INTAKE_API"), os.Getenv("INTAKE_PUT") == "1"); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("INTAKE_SQLITE_CHILD") == "effects" {
		if err := effectsChild(os.Getenv("INTAKE_DB")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("INTAKE_SQLITE_CHILD") == "order" {
		if err := orderChild(os.Getenv("INTAKE_DB")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("INTAKE_SQLITE_CHILD") == "loop" {
		b, err := sqlite.Open(os.Getenv("INTAKE_DB"))
		if err == nil {
			err = intaketest.CrashLoopChild(b)
		}
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	if os.Getenv("INTAKE_SQLITE_CHILD") == "poison" {
		if err := poisonChild(os.Getenv("INTAKE_DB")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("INTAKE_SQLITE_CHILD") == "1" {
		if err := child(os.Getenv("INTAKE_DB"), os.Getenv("INTAKE_HANDLED")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is a service: webhooks into a stream on SQLite, handled by
// appending the event id to a file, until SIGINT.
func child(dbPath, handledPath string) error {
	b, err := sqlite.Open(dbPath)
	if err != nil {
		return err
	}
	defer b.Close()
	log, err := os.OpenFile(handledPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()

	s := intake.New(intake.WithQueue(b), intake.WithClaimLease(600*time.Millisecond), intake.WithLogger(quiet),
		intake.WithDrainTimeout(20*time.Second))
	hook := webhook.New("github", webhook.GitHub(secret), webhook.WithLogger(quiet))
	s.Add(hook)
	var mu sync.Mutex
	s.Handle(func(ctx context.Context, e event.Event) error {
		time.Sleep(300 * time.Microsecond) // slower than arrivals: a backlog builds
		mu.Lock()
		defer mu.Unlock()
		_, err := log.WriteString(e.ID + "\n") // a write(2): survives SIGKILL
		return err
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: hook, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("ADDR %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err = s.Run(ctx)
	_ = srv.Close()
	return err
}

type childProc struct {
	cmd  *exec.Cmd
	addr string
}

func startChild(t *testing.T, db, handled string) *childProc {
	t.Helper()
	cmd, out := intaketest.Child(t, "INTAKE_SQLITE_CHILD=1", "INTAKE_DB="+db, "INTAKE_HANDLED="+handled)
	line := intaketest.FirstLine(t, out, time.Minute)
	addr, ok := strings.CutPrefix(line, "ADDR ")
	if !ok {
		t.Fatalf("child said %q", line)
	}
	return &childProc{cmd: cmd, addr: addr}
}

// githubBody is the body post sends for id.
func githubBody(id string) []byte { return []byte(`{"id":"` + id + `"}`) }

// githubKey is the key the stream keeps the event of id under: GitHub's
// replay guard keys it by its body.
func githubKey(id string) string {
	sum := sha256.Sum256(githubBody(id))
	return event.Key("github", "body:"+hex.EncodeToString(sum[:16]))
}

// post sends one signed webhook and reports whether it got a 2xx.
func post(client *http.Client, addr, id string) bool {
	body := githubBody(id)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/", bytes.NewReader(body))
	req.Header = webhook.SignGitHub(secret, id, "push", body)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

func readHandled(t *testing.T, path string) map[string]int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, id := range strings.Fields(string(data)) {
		got[id]++
	}
	return got
}

// TestCrash kills a service with SIGKILL in the middle of 5,000 webhooks
// and restarts it on the same file: every event that got a 2xx is
// delivered, and the committed keys are exactly the handled events.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two child processes")
	}
	if raceEnabled {
		// The race detector makes the transpiled SQLite crawl, and this
		// test is about processes, not goroutines: it runs without -race.
		t.Skip("skipped under -race; run it without -race")
	}
	dir := t.TempDir()
	db, handled := filepath.Join(dir, "intake.db"), filepath.Join(dir, "handled.log")
	const total, killAfter = 5000, 2000

	first := startChild(t, db, handled)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 5 * time.Second}
	var (
		mu       sync.Mutex
		acked    = map[string]bool{}
		notAcked []string
		once     sync.Once
	)
	ids := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				ok := post(client, first.addr, id)
				mu.Lock()
				if ok {
					acked[id] = true
				} else {
					notAcked = append(notAcked, id)
				}
				n := len(acked)
				mu.Unlock()
				if n >= killAfter {
					once.Do(func() { _ = first.cmd.Process.Signal(syscall.SIGKILL) })
				}
			}
		}()
	}
	for i := range total {
		ids <- fmt.Sprintf("d-%05d", i)
	}
	close(ids)
	wg.Wait()
	_ = first.cmd.Wait()
	client.CloseIdleConnections()

	before := readHandled(t, handled)
	mu.Lock()
	ackedFirst := len(acked)
	backlog := 0
	for id := range acked {
		if before[id] == 0 {
			backlog++
		}
	}
	mu.Unlock()
	t.Logf("first run: %d acknowledged, %d handled, %d acknowledged but not handled when killed", ackedFirst, len(before), backlog)
	if backlog == 0 {
		t.Log("warning: no backlog at the kill; the test proves less than it could")
	}

	// Restart on the same file; the provider retries what was not
	// acknowledged.
	second := startChild(t, db, handled)
	// An event the first run stored but could not answer for is pending
	// (409) until the second run adopts and handles it: retry like a
	// provider, for a while.
	retryUntil := time.Now().Add(60 * time.Second)
	for _, id := range notAcked {
		for !post(client, second.addr, id) {
			if time.Now().After(retryUntil) {
				t.Fatalf("%s never acknowledged after restart", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(readHandled(t, handled)) < total && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	_ = second.cmd.Process.Signal(os.Interrupt)
	if err := second.cmd.Wait(); err != nil {
		t.Fatalf("second run: %v", err)
	}

	after := readHandled(t, handled)
	for id := range acked {
		if after[id] == 0 {
			t.Errorf("%s got a 2xx before the crash and was never handled", id)
		}
	}
	if len(after) != total {
		t.Errorf("%d of %d events handled", len(after), total)
	}
	b := open(t, db)
	keys, err := b.CommittedKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	committed := map[string]bool{}
	for _, k := range keys {
		committed[k] = true
	}
	for id := range after {
		if !committed[githubKey(id)] {
			t.Errorf("%s handled but not committed", id)
		}
	}
	if len(committed) != len(after) {
		t.Errorf("%d keys committed, %d events handled", len(committed), len(after))
	}
	twice := 0
	for _, n := range after {
		if n > 1 {
			twice++
		}
	}
	t.Logf("after restart: %d handled (%d twice: handled, then killed before the ack), %d committed", len(after), twice, len(committed))
}

// poisonChild is a service whose handler kills its own process (SIGKILL)
// on the event "poison", as a decoder bug that crashes the program would.
// It puts that event at start, then waits.
func poisonChild(dbPath string) error {
	b, err := sqlite.Open(dbPath)
	if err != nil {
		return err
	}
	defer b.Close()

	s := intake.New(intake.WithQueue(b), intake.WithClaimLease(300*time.Millisecond), intake.WithLogger(quiet))
	s.Handle(func(ctx context.Context, e event.Event) error {
		if e.ID == "poison" {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		return nil
	}, intake.WithMaxAttempts(3))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		for os.Getenv("INTAKE_POISON_PUT") == "1" {
			err := s.Put(ctx, event.Event{Source: "api", ID: "poison", Payload: []byte(`{"crash":true}`)})
			if _, retry := event.RetryDelay(err); !retry || ctx.Err() != nil {
				return // stored, or pending (held by a predecessor), or dead
			}
			if errors.Is(err, event.ErrPending) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return s.Run(ctx)
}

// TestPoisonEventDiesAcrossKills: an event whose handler kills the
// process each time is dead after WithMaxAttempts attempts, counted across
// the kills, and the process then stays up.
func TestPoisonEventDiesAcrossKills(t *testing.T) {
	if raceEnabled {
		t.Skip("skipped under -race; run it without -race")
	}
	db := filepath.Join(t.TempDir(), "intake.db")
	runs := 0
	for ; runs < 8; runs++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "INTAKE_SQLITE_CHILD=poison", "INTAKE_DB="+db)
		if runs == 0 {
			// Only the first process receives the event: a later put of it
			// would be a provider's resend, which brings a dead event back.
			cmd.Env = append(cmd.Env, "INTAKE_POISON_PUT=1")
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("run %d ended with %v, want killed by its own handler", runs+1, err)
			}
			continue
		case <-time.After(5 * time.Second):
		}
		// Up for 5 s: the event is dead and no longer delivered.
		_ = cmd.Process.Signal(os.Interrupt)
		<-done
		break
	}
	// The first crash counts against no event the process enqueued itself
	// (it marks only adopted events started, so the happy path writes
	// nothing more); each later one counts against the poison, which every
	// later process adopts and starts.
	if runs != 4 {
		t.Errorf("the process was killed %d times, want 4 (WithMaxAttempts, plus the first crash)", runs)
	}
	b, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, err := b.Get(context.Background(), event.Key("api", "poison"))
	if err != nil {
		t.Fatal(err)
	}
	if r.State != dedupe.Dead || r.Attempts != 3 || r.Failure == nil {
		t.Fatalf("after %d kills: %+v (failure %+v), want dead after 3 attempts", runs, r, r.Failure)
	}
	t.Logf("dead after %d kills: %q", runs, r.Failure.Err)
}

// recoveryChild runs a stream on the SQLite queue with the default
// options. "hold" puts 100 events that its handler never finishes, says
// STORED and waits to be killed; "handle" appends each event's id to the
// handled file.
func recoveryChild(dbPath, handledPath, mode string) error {
	b, err := sqlite.Open(dbPath)
	if err != nil {
		return err
	}
	defer b.Close()

	s := intake.New(intake.WithQueue(b), intake.WithLogger(quiet))
	var out *os.File
	if mode == "handle" {
		if out, err = os.OpenFile(handledPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err != nil {
			return err
		}
		defer out.Close()
	}
	var mu sync.Mutex
	s.Handle(func(ctx context.Context, e event.Event) error {
		if mode == "hold" {
			select {} // a long job: still running when the process is killed
		}
		mu.Lock()
		defer mu.Unlock()
		_, err := out.WriteString(e.ID + "\n")
		return err
	}, intake.WithWorkers(8))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if mode == "hold" {
		go func() {
			for i := range 100 {
				for {
					err := s.Put(ctx, event.Event{Source: "api", ID: fmt.Sprintf("e-%03d", i)})
					if err == nil || ctx.Err() != nil {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
			fmt.Println("STORED")
		}()
	}
	return s.Run(ctx)
}

// TestRestartRedeliversFast: with the default options (a 30 s claim
// lease), a receiver restarted after kill -9 on the same file redelivers
// what the killed process held within 2 s: its holder lock tells it the
// predecessor is gone.
func TestRestartRedeliversFast(t *testing.T) {
	if raceEnabled {
		t.Skip("skipped under -race; run it without -race")
	}
	dir := t.TempDir()
	db, handled := filepath.Join(dir, "intake.db"), filepath.Join(dir, "handled.log")
	start := func(mode string) (*exec.Cmd, *bufio.Reader) {
		return intaketest.Child(t, "INTAKE_SQLITE_CHILD="+mode, "INTAKE_DB="+db, "INTAKE_HANDLED="+handled)
	}
	holder, out := start("hold")
	if line, err := out.ReadString('\n'); err != nil || strings.TrimSpace(line) != "STORED" {
		t.Fatalf("child said %q, %v", line, err)
	}
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = holder.Wait()

	restarted := time.Now()
	start("handle")
	for len(readHandled(t, handled)) < 100 {
		if time.Since(restarted) > 10*time.Second {
			t.Fatalf("%d of 100 redelivered 10 s after the restart", len(readHandled(t, handled)))
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(restarted)
	t.Logf("all 100 events held by the killed process redelivered %v after the restart (process start included)", took.Round(time.Millisecond))
	if took > 2*time.Second {
		t.Errorf("redelivery took %v, want at most 2 s", took)
	}
	for id, n := range readHandled(t, handled) {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
		}
	}
}

// ackWaitChild puts two events: it handles w-1 (a line in the handled
// file), calls AckWait and says COMMITTED; it handles w-2 and never acks
// it, so that a restart has something to redeliver.
func ackWaitChild(dbPath, handledPath string) error {
	b, err := sqlite.Open(dbPath)
	if err != nil {
		return err
	}
	defer b.Close()
	out, err := os.OpenFile(handledPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()

	s := intake.New(intake.WithQueue(b), intake.WithLogger(quiet))
	deliveries := s.Subscribe()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		for _, id := range []string{"w-2", "w-1"} {
			if err := intaketest.Put(ctx, s, event.Event{Source: "api", ID: id}); err != nil {
				fmt.Fprintln(os.Stderr, "child: put:", err)
			}
		}
	}()
	go func() {
		for d := range deliveries {
			if _, err := out.WriteString(d.Event.ID + "\n"); err != nil {
				fmt.Fprintln(os.Stderr, "child:", err)
			}
			if d.Event.ID != "w-1" {
				continue // held, never acked
			}
			if err := d.AckWait(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "child: AckWait:", err)
				continue
			}
			fmt.Println("COMMITTED")
		}
	}()
	return s.Run(ctx)
}

// Issue #21, item 16: an event whose handler's AckWait returned is never
// delivered again, even when the process is killed (SIGKILL) the moment
// after; an event it never acked is.
func TestAckWaitSurvivesKill(t *testing.T) {
	dir := t.TempDir()
	db, handled := filepath.Join(dir, "intake.db"), filepath.Join(dir, "handled.log")
	proc, out := intaketest.Child(t, "INTAKE_SQLITE_CHILD=ackwait", "INTAKE_DB="+db, "INTAKE_HANDLED="+handled)
	if line := intaketest.FirstLine(t, out, time.Minute); line != "COMMITTED" {
		t.Fatalf("child said %q", line)
	}
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()

	intaketest.Child(t, "INTAKE_SQLITE_CHILD=handle", "INTAKE_DB="+db, "INTAKE_HANDLED="+handled)
	deadline := time.Now().Add(20 * time.Second)
	for readHandled(t, handled)["w-2"] < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the unacked w-2 was not redelivered: %v", readHandled(t, handled))
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // anything else adopted with it is handled by now
	if n := readHandled(t, handled)["w-1"]; n != 1 {
		t.Errorf("w-1, acked with AckWait before the kill, handled %d times", n)
	}
}

// Issue #34, item 6: a process killed a second after each of five starts
// (the default options: 5 attempts) dead-letters nothing of a backlog it
// never delivered. It dead-lettered 724–756 of 1,200 before.
func TestCrashLoopBuriesNothingUndelivered(t *testing.T) {
	db := filepath.Join(t.TempDir(), "intake.db")
	b, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	intaketest.CrashLoop(t, b, func() (*exec.Cmd, *bufio.Reader) {
		return intaketest.Child(t, "INTAKE_SQLITE_CHILD=loop", "INTAKE_DB="+db)
	})
}
