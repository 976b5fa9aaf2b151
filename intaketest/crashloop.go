package intaketest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// The crash loop of issue #34, item 6: a backlog of CrashLoopEvents, a
// process that takes it with the default options and is SIGKILLed about
// a second after each start, CrashLoopKills times. No handler fails, so
// no event may die: a crash counts only against the events whose
// delivery had begun.
const (
	CrashLoopEvents = 1200
	CrashLoopKills  = 5
	crashLoopWork   = 40 * time.Millisecond // each handler call
)

// CrashLoopChild is the crash loop's child process on q: a stream with
// the default options whose handler takes 40 ms, eight at once. It
// prints READY once the stream runs, and runs until it is killed.
func CrashLoopChild(q dedupe.Queue) error {
	s := intake.New(intake.WithQueue(q), intake.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	s.Handle(func(ctx context.Context, e event.Event) error {
		select {
		case <-time.After(crashLoopWork):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, intake.WithWorkers(8))
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background()) }()
	select {
	case <-s.Started():
	case err := <-errc:
		return err
	}
	fmt.Println("READY")
	return <-errc
}

// CrashLoop runs the crash loop: it enqueues the backlog into q (given
// back, so the first child adopts it), then starts a child (start returns
// it and its stdout) and SIGKILLs it a second after it says READY,
// CrashLoopKills times; then it drains what is left in this process on
// q, with the default options, and fails the test if any event died or
// any was lost.
func CrashLoop(t *testing.T, q dedupe.Queue, start func() (*exec.Cmd, *bufio.Reader)) {
	t.Helper()
	ctx := context.Background()
	keys := make([]string, CrashLoopEvents)
	for i := range keys {
		e := event.Event{Source: "loop", ID: fmt.Sprintf("e-%04d", i), Type: "t", Payload: []byte(`{}`)}
		keys[i] = e.Key()
		if st, err := q.Enqueue(ctx, keys[i], e, time.Minute); err != nil || st != dedupe.Claimed {
			t.Fatalf("Enqueue %s: %v %v", keys[i], st, err)
		}
	}
	if err := q.Extend(ctx, keys, 0); err != nil {
		t.Fatal(err)
	}
	for k := range CrashLoopKills {
		cmd, out := start()
		if line := FirstLine(t, out, 60*time.Second); line != "READY" {
			t.Fatalf("child %d said %q", k+1, line)
		}
		time.Sleep(time.Second)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
	}

	// What is left, handled here: none may be dead.
	s := intake.New(intake.WithQueue(q), intake.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	var mu sync.Mutex
	var dead []string
	s.Handle(func(ctx context.Context, e event.Event) error { return nil }, intake.WithWorkers(8),
		intake.WithDeadLetter(func(_ context.Context, d intake.DeadLetter) {
			mu.Lock()
			defer mu.Unlock()
			dead = append(dead, fmt.Sprintf("%s (%d attempts: %v)", d.Event.ID, d.Attempts, d.Err))
		}))
	runCtx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- s.Run(runCtx) }()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		held, err := s.List(ctx, dedupe.Filter{State: dedupe.Queued, Limit: 1})
		if err == nil && len(held) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue still holds events after two minutes (%v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dead) > 0 {
		t.Errorf("%d of %d events dead after %d crashes, though no handler failed; the first: %v", len(dead), CrashLoopEvents, CrashLoopKills, dead[:min(5, len(dead))])
	}
	// Every event was committed: a new arrival of its key is a duplicate.
	for _, k := range keys {
		st, err := q.Enqueue(ctx, k, event.Event{Source: "loop", ID: k}, time.Minute)
		if err != nil || st != dedupe.Done {
			t.Errorf("%s after the loop: %v %v, want done", k, st, err)
			if st == dedupe.Claimed {
				_ = q.Release(ctx, k)
			}
		}
	}
}
