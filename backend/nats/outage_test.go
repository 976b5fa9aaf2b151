package nats_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/intaketest"
	"github.com/intakehq/intake/webhook"
)

// TestOutage SIGKILLs the only server mid-test: webhooks are answered
// 503 with Retry-After at once (not after the request timeout), nothing
// is acknowledged, and the stream reports not ready within one check;
// after the server comes back on its files, the stream is ready again,
// the events are accepted and each is handled once, with the one
// acknowledged before the outage.
func TestOutage(t *testing.T) {
	c, nc := ownServer(t)
	q := newQueue(t, nc, "OUTAGE")
	const check = 200 * time.Millisecond
	s := intake.New(intake.WithQueue(q), intake.WithLogger(quiet), intake.WithHealthInterval(check))
	hook := webhook.New("github", webhook.GitHub(secret), webhook.WithLogger(quiet))
	s.Add(hook)
	var handled intaketest.Counter
	s.Handle(handled.Handle)
	srv := httptest.NewServer(hook)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(ctx) }()
	defer func() { cancel(); <-runDone }()

	post := func(id string) (*http.Response, time.Duration) {
		body := []byte(`{"id":"` + id + `"}`)
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		req.Header = webhook.SignGitHub(secret, id, "push", body)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp, time.Since(start)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if resp, _ := post("before"); resp.StatusCode == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not accepting before the outage")
		}
	}
	if !waitFor(5*time.Second, func() bool { return s.Health().Ready }) {
		t.Fatalf("not ready before the outage: %+v", s.Health())
	}

	c.Kill(0)
	outage := time.Now()
	if !waitFor(5*time.Second, func() bool { return !nc.IsConnected() }) {
		t.Fatal("the client did not see the server go")
	}
	for i := range 5 {
		resp, took := post(fmt.Sprint("during-", i))
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("during the outage: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if took > time.Second {
			t.Errorf("answered after %v during the outage, want at once", took)
		}
	}
	if !waitFor(2*check+time.Second, func() bool { return !s.Health().Ready }) {
		t.Fatalf("still ready %v into the outage: %+v", time.Since(outage), s.Health())
	}
	t.Logf("not ready %v into the outage: store %q", time.Since(outage).Round(time.Millisecond), s.Health().Store)

	if err := c.StartNode(0); err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool { return s.Health().Ready }) {
		t.Fatalf("not ready again after the outage: %+v", s.Health())
	}
	for i := range 5 {
		var resp *http.Response
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if resp, _ = post(fmt.Sprint("during-", i)); resp.StatusCode == http.StatusAccepted || time.Now().After(deadline) {
				break
			}
		}
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("after recovery: %d, want 202", resp.StatusCode)
		}
	}
	if !waitFor(10*time.Second, func() bool { return handled.Len() == 6 }) {
		t.Fatalf("handled %v, want 6 events", handled.Counts())
	}
	handled.CheckOnce(t)
}

// waitFor polls cond until it holds or d has passed.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
