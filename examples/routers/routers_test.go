package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/webhook"
)

const secret = "It's a Secret to Everybody"

func TestHandlerInEveryRouter(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, build := range Routers {
		t.Run(name, func(t *testing.T) {
			stream := intake.New(intake.WithLogger(quiet))
			hook := webhook.New("github", webhook.GitHub(secret), webhook.WithLogger(quiet))
			stream.Add(hook)
			deliveries := stream.Subscribe()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- stream.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			}()
			srv := httptest.NewServer(build(hook))
			defer srv.Close()

			body := []byte(`{"zen":"Design for failure."}`)
			send := func(method, secret, id string) int {
				req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
				req.Header = webhook.SignGitHub(secret, id, "ping", body)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			code := send(http.MethodPost, secret, "d-1")
			for deadline := time.Now().Add(time.Second); code == http.StatusServiceUnavailable && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
				code = send(http.MethodPost, secret, "d-1")
			}
			if code != http.StatusAccepted {
				t.Fatalf("signed webhook: %d, want 202", code)
			}
			d := <-deliveries
			if d.Event.ID != "d-1" || !bytes.Equal(d.Event.Payload, body) {
				t.Fatalf("delivered %q %q", d.Event.ID, d.Event.Payload)
			}
			d.Ack()
			if code := send(http.MethodPost, secret, "d-1"); code != http.StatusOK {
				t.Errorf("redelivery: %d, want 200", code)
			}
			if code := send(http.MethodPost, "wrong secret", "d-2"); code != http.StatusUnauthorized {
				t.Errorf("bad signature: %d, want 401", code)
			}
			if code := send(http.MethodGet, secret, "d-3"); code != http.StatusMethodNotAllowed && code != http.StatusNotFound {
				t.Errorf("GET: %d, want 405 (or the router's 404)", code)
			}
			go func() {
				for range deliveries {
				}
			}()
		})
	}
}
