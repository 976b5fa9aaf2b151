package intake_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/leak"
	"github.com/intakehq/intake/webhook"
)

// Started tells the program when the stream takes events: once it is
// closed, Put is accepted and every webhook handler added answers as a
// running one, not 503. Issue #34, item 8.
func TestStartedMeansWebhooksAnswer(t *testing.T) {
	leak.Check(t)
	for range 50 { // the race was between Run's goroutines: try it often
		s := intake.New(intake.WithLogger(quiet))
		hook := webhook.New("github", webhook.GitHub("s3cret"), webhook.WithLogger(quiet))
		s.Add(hook)
		s.Handle(func(context.Context, event.Event) error { return nil })
		select {
		case <-s.Started():
			t.Fatal("Started before Run")
		default:
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		select {
		case <-s.Started():
		case <-time.After(30 * time.Second):
			t.Fatal("Started never closed")
		}
		body := `{"zen":"hi"}`
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		for k, v := range webhook.SignGitHub("s3cret", "d-1", "ping", []byte(body)) {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		hook.ServeHTTP(w, r)
		if w.Code/100 != 2 {
			t.Fatalf("a webhook right after Started: %d %s", w.Code, w.Body)
		}
		if err := s.Put(ctx, event.Event{Source: "api", ID: "1"}); err != nil {
			t.Fatalf("Put right after Started: %v", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
