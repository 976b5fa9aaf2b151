package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

// TestDeadLettersOnPostgres, end to end through signed webhooks on the
// real server: events that keep failing are kept dead with their error
// (listed from another replica's backend); one is replayed and handled
// once; one is discarded; the provider's resend of a third is accepted
// (202) and handled.
func TestDeadLettersOnPostgres(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	var mu sync.Mutex
	fixed := false
	handled := map[string]int{}
	s := intake.New(intake.WithQueue(newBackend(t, pool, prefix)), intake.WithLogger(quiet))
	hook := webhook.New("github", webhook.GitHub(secret), webhook.WithLogger(quiet))
	s.Add(hook)
	s.Handle(func(ctx context.Context, e event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if !fixed {
			return errors.New("schema mismatch in " + e.ID)
		}
		handled[e.ID]++
		return nil
	}, intake.WithName("sync"), intake.WithMaxAttempts(2), intake.WithRetryBackoff(time.Millisecond, time.Millisecond))
	srv := httptest.NewServer(hook)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	post := func(id string) int {
		body := []byte(`{"delivery":"` + id + `"}`)
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		req.Header = webhook.SignGitHub(secret, id, "push", body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, id := range []string{"d1", "d2", "d3"} {
		for code := post(id); code != http.StatusAccepted; code = post(id) {
			time.Sleep(5 * time.Millisecond) // 503 until Run has started
		}
	}
	other := newBackend(t, pool, prefix) // an operator's view, as from another replica
	var dead []dedupe.Record
	if !waitFor(10*time.Second, func() bool {
		dead, _ = other.List(context.Background(), dedupe.Filter{State: dedupe.Dead, Source: "github"})
		return len(dead) == 3
	}) {
		t.Fatalf("dead: %+v", dead)
	}
	keyOf := map[string]string{} // the replay guard keys GitHub's events by body
	for _, r := range dead {
		keyOf[r.Event.ID] = r.Key
		if r.Attempts != 2 || r.Failure == nil || r.Failure.Err != "schema mismatch in "+r.Event.ID || r.Failure.Subscription != "sync" {
			t.Errorf("dead record %+v, failure %+v", r, r.Failure)
		}
	}
	mu.Lock()
	fixed = true
	mu.Unlock()
	if err := s.Replay(context.Background(), keyOf["d1"]); err != nil {
		t.Fatal(err)
	}
	if err := s.Discard(context.Background(), keyOf["d2"]); err != nil {
		t.Fatal(err)
	}
	if code := post("d3"); code != http.StatusAccepted {
		t.Fatalf("the provider's resend of a dead event: %d, want 202", code)
	}
	if !waitFor(5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled["d1"] == 1 && handled["d3"] == 1
	}) {
		t.Fatalf("handled %v", handled)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(handled) != 2 || handled["d1"] != 1 || handled["d3"] != 1 {
		t.Errorf("handled %v, want d1 and d3 once", handled)
	}
	if _, err := other.Get(context.Background(), keyOf["d2"]); !errors.Is(err, dedupe.ErrNotFound) {
		t.Errorf("discarded d2: %v", err)
	}
	if code := post("d1"); code != http.StatusOK {
		t.Errorf("d1 after it was handled: %d, want 200", code)
	}
}
