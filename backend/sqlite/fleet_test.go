package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fleet"
	"github.com/intakehq/intake/poller"
)

// TestFleetOnSQLiteResumesAfterRestart runs a fleet of 30 connections on
// an SQLite file into a stream on the same file, stops it half way, and
// starts a new process's worth of it (a new backend on the file): every
// item is handled once, no connection starts over, and a refused
// credential's pause outlives the restart.
func TestFleetOnSQLiteResumesAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.db")
	var mu sync.Mutex
	handled := map[string]int{}
	asked := map[string][]int{} // cursors asked for, per connection
	items := 6
	poll := func(_ context.Context, c fleet.Connection, cursor string) (poller.Page, error) {
		if c.Credential == "revoked" {
			return poller.Page{}, fmt.Errorf("list: %w", &poller.StatusError{Code: 403})
		}
		n, _ := strconv.Atoi(cursor)
		mu.Lock()
		asked[c.ID] = append(asked[c.ID], n)
		mu.Unlock()
		pg := poller.Page{Next: strconv.Itoa(n)}
		if n < items {
			pg.Events = []event.Event{{ID: fmt.Sprintf("%s-%d", c.ID, n), Payload: []byte("{}")}}
			pg.Next = strconv.Itoa(n + 1)
		}
		return pg, nil
	}
	run := func(stopWhen func() bool) {
		b := open(t, path)
		s := intake.New(intake.WithQueue(b), intake.WithLogger(quiet))
		s.Handle(func(_ context.Context, e event.Event) error {
			mu.Lock()
			handled[e.ID]++
			mu.Unlock()
			return nil
		})
		f := fleet.New("accounts", b.Connections(), fleet.WithScan(10*time.Millisecond), fleet.WithLogger(quiet))
		f.Source("api", poll)
		s.Add(f)
		if stopWhen == nil { // the first run adds the connections
			for i := range 30 {
				cred := "tok"
				if i == 7 {
					cred = "revoked"
				}
				if err := b.Connections().Add(context.Background(), fleet.Connection{ID: fmt.Sprintf("c%02d", i), Source: "api", Interval: 20 * time.Millisecond, Credential: cred}, 0); err != nil {
					t.Fatal(err)
				}
			}
			stopWhen = func() bool { mu.Lock(); defer mu.Unlock(); return len(handled) >= 29*items/2 }
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		deadline := time.Now().Add(60 * time.Second)
		for !stopWhen() {
			if time.Now().After(deadline) {
				cancel()
				<-done
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("not within 60 s: %d items handled", len(handled))
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	run(nil)
	run(func() bool { mu.Lock(); defer mu.Unlock(); return len(handled) == 29*items })

	mu.Lock()
	defer mu.Unlock()
	for id, n := range handled {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
		}
	}
	for id, cursors := range asked {
		for i := 1; i < len(cursors); i++ {
			if cursors[i] < cursors[i-1] {
				t.Errorf("%s asked for cursor %d after %d: started over", id, cursors[i], cursors[i-1])
			}
		}
	}
	ctx := context.Background()
	b := open(t, path)
	c, err := b.Connections().Get(ctx, "c07")
	if err != nil || c.Paused != fleet.PausedBySystem || c.Polls != 1 {
		t.Fatalf("the revoked connection after a restart: %+v, %v (paused by the system after one poll)", c, err)
	}
	// A person's pause outlives a restart and a credential refresh; the
	// system's is lifted by new credentials.
	if err := b.Connections().Pause(ctx, "c03", "ops@example.com", "offboarding"); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = open(t, path)
	cred := "tok-2"
	for _, id := range []string{"c03", "c07"} {
		if _, err := b.Connections().Update(ctx, id, fleet.Change{Credential: &cred}); err != nil {
			t.Fatal(err)
		}
	}
	if c, _ := b.Connections().Get(ctx, "c03"); c.Paused != "ops@example.com" || c.Reason != "offboarding" {
		t.Fatalf("a person's pause after a restart and new credentials: %+v", c)
	}
	if c, _ := b.Connections().Get(ctx, "c07"); c.Paused != "" {
		t.Fatalf("the system's pause after new credentials: %+v", c)
	}
}
