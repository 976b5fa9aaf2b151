package sqlite_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fetch"
	"github.com/intakehq/intake/intaketest"
)

// fetchChild is a service whose handler fetches the object each thin
// event names (from INTAKE_API) and appends "id payload" to the handled
// file. With put=1 it first puts 50 thin events; it says STORED and runs
// until killed.
func fetchChild(dbPath, handledPath, api string, put bool) error {
	b, err := sqlite.Open(dbPath)
	if err != nil {
		return err
	}
	log, err := os.OpenFile(handledPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	f := fetch.New(func(e event.Event) (fetch.Object, bool) {
		return fetch.Object{ID: e.ID, URL: api + "/objects/" + e.ID}, true
	}, fetch.HTTP(nil, nil))
	s := intake.New(intake.WithQueue(b), intake.WithLogger(quiet))
	var mu sync.Mutex
	s.Handle(f.Handle(func(ctx context.Context, e event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		_, err := log.WriteString(e.ID + " " + string(e.Payload) + "\n")
		return err
	}), intake.WithWorkers(8), intake.WithAckTimeout(time.Minute))
	go func() { _ = s.Run(context.Background()) }()
	if put {
		for i := range 50 {
			e := event.Event{Source: "api", ID: fmt.Sprintf("obj_%02d", i), Type: "changed", Payload: []byte(`{"thin":true}`)}
			if err := intaketest.Put(context.Background(), s, e); err != nil {
				return err
			}
		}
	}
	fmt.Println("STORED")
	select {}
}

// A service killed with SIGKILL while its handler fetches (the API
// hangs) fetches again after the restart: every thin event is delivered
// with its full object, once.
func TestFetchSurvivesKill(t *testing.T) {
	var hang atomic.Bool
	hang.Store(true)
	var requests atomic.Int64
	release := make(chan struct{})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if hang.Load() {
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		id := strings.TrimPrefix(r.URL.Path, "/objects/")
		fmt.Fprintf(w, `{"full":true,"id":%q}`, id)
	}))
	defer api.Close()
	defer close(release)
	dir := t.TempDir()
	db, handled := filepath.Join(dir, "fetch.db"), filepath.Join(dir, "handled")
	start := func(put string) {
		cmd, out := intaketest.Child(t, "INTAKE_SQLITE_CHILD=fetch", "INTAKE_DB="+db, "INTAKE_HANDLED="+handled, "INTAKE_API="+api.URL, "INTAKE_PUT="+put)
		if line := intaketest.FirstLine(t, out, time.Minute); line != "STORED" {
			t.Fatalf("child said %q", line)
		}
		if put == "1" {
			for requests.Load() < 8 { // its workers are mid-fetch
				time.Sleep(time.Millisecond)
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
		}
	}
	start("1")
	if got := readHandled(t, handled); len(got) != 0 {
		t.Fatalf("handled %d events while the API hung", len(got))
	}
	hang.Store(false)
	start("0")
	deadline := time.Now().Add(30 * time.Second)
	for {
		data, _ := os.ReadFile(handled)
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) >= 50 || time.Now().After(deadline) {
			seen := map[string]int{}
			for _, l := range lines {
				id, payload, _ := strings.Cut(l, " ")
				seen[id]++
				if want := fmt.Sprintf(`{"full":true,"id":%q}`, id); payload != want {
					t.Errorf("%s delivered with %s, want %s", id, payload, want)
				}
			}
			for i := range 50 {
				if id := fmt.Sprintf("obj_%02d", i); seen[id] != 1 {
					t.Errorf("%s handled %d times", id, seen[id])
				}
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
