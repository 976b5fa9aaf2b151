package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/relay"
	"github.com/intakehq/intake/webhook"
)

func listenCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("intake listen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	feedURL := fs.String("relay", "", "the relay's feed URL, e.g. https://relay.example.com/feed")
	token := fs.String("token", os.Getenv("INTAKE_RELAY_TOKEN"), "the feed's bearer token (default $INTAKE_RELAY_TOKEN)")
	forward := fs.String("forward-to", "", "POST each event's payload here, with its original headers; default: print JSON lines")
	resign := fs.String("resign", "", "re-sign forwarded events, scheme:secret, instead of keeping the provider's signature")
	state := fs.String("state", "intake-listen.db", "SQLite file for the cursor and the queue: a restart resumes")
	wait := fs.Duration("wait", 30*time.Second, "how long the relay may hold each request")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: intake listen --relay URL --token T [--forward-to URL] [--resign SCHEME:SECRET]\n\n"+
			"Long-polls a relay with outbound connections only, and prints each event as a JSON line\n"+
			"or forwards it. Each event is delivered once: the cursor and the queue are kept in --state,\n"+
			"and a failed forward is retried with backoff.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *feedURL == "" || *token == "" {
		fs.Usage()
		fmt.Fprintln(stderr, "\nintake listen: --relay and --token are required")
		return errUsage
	}
	var rescheme, resecret string
	if *resign != "" {
		var ok bool
		if rescheme, resecret, ok = strings.Cut(*resign, ":"); !ok || resecret == "" {
			return fmt.Errorf("--resign: want scheme:secret")
		}
	}
	b, err := sqlite.Open(*state)
	if err != nil {
		return err
	}
	defer b.Close()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	stream := intake.New(intake.WithQueue(b), intake.WithLogger(log))
	fetch := relay.NewFetcher(*feedURL, *token, relay.WithWait(*wait))
	stream.Add(poller.New("relay", fetch, poller.LongPoll(), poller.KeepSource(),
		poller.WithCheckpoint(b.Checkpoint()), poller.WithLogger(log)))
	var out sync.Mutex
	client := &http.Client{Timeout: 30 * time.Second}
	stream.Handle(func(ctx context.Context, e event.Event) error {
		if *forward == "" {
			out.Lock()
			defer out.Unlock()
			return printEvent(stdout, e)
		}
		return forwardEvent(ctx, client, *forward, e, rescheme, resecret)
	}, intake.WithName("listen"), intake.WithMaxAttempts(0), intake.WithRetryBackoff(100*time.Millisecond, 30*time.Second))
	fmt.Fprintf(stderr, "listening to %s\n", *feedURL)
	return stream.Run(ctx)
}

// printEvent writes e as one JSON line; the payload raw when it is JSON.
func printEvent(w io.Writer, e event.Event) error {
	line := struct {
		Source  string          `json:"source"`
		ID      string          `json:"id"`
		Type    string          `json:"type,omitempty"`
		Payload json.RawMessage `json:"payload,omitempty"`
		Base64  string          `json:"payload_base64,omitempty"`
	}{Source: e.Source, ID: e.ID, Type: e.Type}
	if json.Valid(e.Payload) {
		line.Payload = e.Payload
	} else if len(e.Payload) > 0 {
		line.Base64 = base64.StdEncoding.EncodeToString(e.Payload)
	}
	b, err := json.Marshal(line)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// forwardEvent posts e's payload to url with the headers the relay kept
// (the provider's signature among them), or signed anew with a local
// secret; anything but a 2xx is an error, retried.
func forwardEvent(ctx context.Context, client *http.Client, url string, e event.Event, scheme, secret string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(e.Payload))
	if err != nil {
		return err
	}
	for k, v := range e.Meta {
		if name, ok := strings.CutPrefix(k, webhook.MetaHeader); ok {
			req.Header.Set(name, v)
		}
	}
	if ct := e.Meta["content-type"]; ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if scheme != "" {
		h, err := sign(scheme, secret, e.ID, e.Type, e.Payload)
		if err != nil {
			return err
		}
		for k, v := range h {
			req.Header[k] = v
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("forward %s: %s", e.ID, resp.Status)
	}
	return nil
}
