package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/console"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
)

// `intake events replay --all` and `discard --all` act on every match of
// their filters, print progress and an end line, on a database file and
// through a console; nonsense flags get a usage error.
func TestEventsBulk(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "q.db")
	b, err := sqlite.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	s := intake.New(intake.WithQueue(b), intake.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	var fixed atomic.Bool
	var mu sync.Mutex
	handled := map[string]int{}
	s.Handle(func(ctx context.Context, e event.Event) error {
		if !fixed.Load() {
			return fmt.Errorf("upstream %s", e.Type)
		}
		mu.Lock()
		handled[e.ID]++
		mu.Unlock()
		return nil
	}, intake.WithMaxAttempts(1))
	h := console.New(s)
	defer h.Close()
	srv := httptest.NewServer(http.StripPrefix("/intake", h))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	const n = 90 // types 500, 502 and 404, 30 each
	for i := range n {
		typ := []string{"500", "502", "404"}[i%3]
		if err := intaketest.Put(ctx, s, event.Event{Source: "shop", ID: fmt.Sprint(i), Type: typ}); err != nil {
			t.Fatal(err)
		}
	}
	dead := func() int {
		recs, err := dedupe.Select(ctx, b, dedupe.Filter{State: dedupe.Dead}, 0, func(dedupe.Record) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	for deadline := time.Now().Add(10 * time.Second); dead() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d dead of %d", dead(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cli := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"events"}, args...), &out, &errb)
		return out.String() + errb.String(), code
	}
	for _, bad := range [][]string{
		{"list", "--all", "--db", dbPath},
		{"replay", "--all", "--db", dbPath, "4:shop:1"},
		{"replay", "--all", "--state", "queued", "--db", dbPath},
		{"replay", "--all", "--state", "all", "--db", dbPath},
		{"replay", "--all", "--since", "yesterday", "--db", dbPath},
		{"replay", "--all", "--since", "1h", "--until", "2h", "--db", dbPath},
		{"replay", "--all", "--class", "fatal", "--db", dbPath},
	} {
		if out, code := cli(bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage):\n%s", bad, code, out)
		}
	}
	fixed.Store(true)
	// By error text, on the file: the 30 whose error says 50 and type 500.
	out, code := cli("replay", "--all", "--error", "upstream 50", "--class", "transient", "--type", "500", "--since", "1h", "--db", dbPath)
	if code != 0 || !strings.Contains(out, "ended: 30 done") {
		t.Fatalf("replay --all on the file (exit %d):\n%s", code, out)
	}
	// Through the console: the 502s.
	out, code = cli("replay", "--all", "--type", "502", "--console", srv.URL+"/intake/")
	if code != 0 || !strings.Contains(out, "ended: 30 done") {
		t.Fatalf("replay --all through the console (exit %d):\n%s", code, out)
	}
	// The 404s are discarded.
	out, code = cli("discard", "--all", "--error", "404", "--db", dbPath)
	if code != 0 || !strings.Contains(out, "ended: 30 done") {
		t.Fatalf("discard --all (exit %d):\n%s", code, out)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		mu.Lock()
		got := len(handled)
		mu.Unlock()
		if got == 2*n/3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d handled, want %d", got, 2*n/3)
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	for id, c := range handled {
		if c != 1 {
			t.Errorf("event %s handled %d times", id, c)
		}
	}
	mu.Unlock()
	if d := dead(); d != 0 {
		t.Errorf("%d still dead, want 0", d)
	}
}
