package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
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

			send := func(method, secret, id string) int {
				body := []byte(`{"zen":"Design for failure.","delivery":"` + id + `"}`)
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
			if d.Event.ID != "d-1" || !bytes.Contains(d.Event.Payload, []byte(`"delivery":"d-1"`)) {
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

// The curl line the command prints is a delivery the handler accepts.
func TestCurlLineIsSigned(t *testing.T) {
	line := curlLine("http://127.0.0.1:1/hooks/github", "s3cret")
	h := http.Header{}
	for _, part := range strings.Split(line, " -H '")[1:] {
		k, v, _ := strings.Cut(strings.SplitN(part, "'", 2)[0], ": ")
		h.Set(k, v)
	}
	_, data, _ := strings.Cut(line, " --data '")
	body := []byte(strings.TrimSuffix(data, "'"))
	e, err := webhook.GitHub("s3cret").Verify(h, body)
	if err != nil {
		t.Fatalf("the printed delivery does not verify: %v\n%s", err, line)
	}
	if e.Type != "ping" {
		t.Fatalf("type %q", e.Type)
	}
}
