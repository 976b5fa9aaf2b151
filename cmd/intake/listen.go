package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
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
	"github.com/intakehq/intake/tracing"
	"github.com/intakehq/intake/webhook"
)

func listenCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("intake listen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	feedURL := fs.String("relay", "", "the relay's feed URL, e.g. https://relay.example.com/feed")
	token := fs.String("token", os.Getenv("INTAKE_RELAY_TOKEN"), "the feed's bearer token (default $INTAKE_RELAY_TOKEN)")
	var forwards list
	fs.Var(&forwards, "forward-to", "POST each event's payload, with its original headers, to URL (every source) or, as source=URL, a source's events to its own URL (repeatable); default: print JSON lines")
	attempts := fs.Int("attempts", 5, "tries of a forward answered with a 4xx other than 408 or 429 before the event is dead (kept in --state: intake events list --db, then replay); 5xx and network errors are retried without end")
	resign := fs.String("resign", "", "re-sign forwarded events, scheme:secret (the secret may be env:VAR or file:PATH), instead of keeping the provider's signature")
	state := fs.String("state", "intake-listen.db", "SQLite file for the cursor and the queue: a restart resumes")
	wait := fs.Duration("wait", 30*time.Second, "how long the relay may hold each request")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: intake listen --relay URL --token T [--forward-to [SOURCE=]URL ... [--resign SCHEME:SECRET]]\n\n"+
			"Long-polls a relay with outbound connections only, and prints each event as a JSON line\n"+
			"or forwards it. Each event is delivered once: the cursor and the queue are kept in --state,\n"+
			"and a failed forward is retried with backoff. A relay that refuses the token (401, 403)\n"+
			"or has no feed at the URL (404) stops it with exit 1; outages (5xx, network) are retried.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout, 0); err != nil {
		return err
	}
	if *feedURL == "" || *token == "" {
		return usagef("--relay and --token (or $INTAKE_RELAY_TOKEN) are required (intake listen -h)")
	}
	if err := checkURL("--relay", *feedURL); err != nil {
		return err
	}
	routes, err := parseRoutes(forwards)
	if err != nil {
		return err
	}
	if *attempts < 1 {
		return usagef("--attempts %d: must be at least 1", *attempts)
	}
	var resigner *signer
	if *resign != "" {
		if routes == nil {
			return usagef("--resign re-signs forwarded events: it needs --forward-to")
		}
		scheme, secret, ok := strings.Cut(*resign, ":")
		if !ok || scheme == "" || secret == "" {
			return usagef("--resign %q: want scheme:secret, e.g. github:$SECRET", redactResign(*resign))
		}
		if secret, err = readSecret(secret); err != nil {
			return usagef("--resign: %v", err)
		}
		if resigner, err = newSigner(scheme, secret); err != nil {
			return usagef("--resign: %v", err)
		}
	}
	if *wait <= 0 {
		return usagef("--wait %v: must be positive", *wait)
	}
	if err := checkDBFile("--state", *state); err != nil {
		return err
	}
	b, err := sqlite.Open(*state)
	if err != nil {
		return err
	}
	defer b.Close()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	stream := intake.New(intake.WithQueue(b), intake.WithLogger(log))
	// A refusal that retrying cannot heal (a wrong token, a wrong path)
	// stops the command with its cause; anything else is retried.
	ctx, refuse := context.WithCancelCause(ctx)
	defer refuse(nil)
	fetch := refusals(relay.NewFetcher(*feedURL, *token, relay.WithWait(*wait)), *feedURL, refuse)
	stream.Add(poller.New("relay", fetch, poller.LongPoll(), poller.KeepSource(),
		poller.WithCheckpoint(b.Checkpoint()), poller.WithLogger(log)))
	var out sync.Mutex
	client := &http.Client{Timeout: 30 * time.Second}
	stream.Handle(func(ctx context.Context, e event.Event) error {
		if routes == nil {
			out.Lock()
			defer out.Unlock()
			return printEvent(stdout, e)
		}
		url := routes.to(e.Source)
		if url == "" {
			return intake.Permanent(fmt.Errorf("no --forward-to for source %q (give source=URL, or a URL for every source)", e.Source))
		}
		err := forwardEvent(ctx, client, url, e, resigner)
		var refused *refusedError
		if n, _ := intake.Attempt(ctx); errors.As(err, &refused) && n >= *attempts {
			return intake.Permanent(err) // the endpoint refuses it: a dead letter, not a retry without end
		}
		return err
	}, intake.WithName("listen"), intake.WithMaxAttempts(0), intake.WithRetryBackoff(100*time.Millisecond, 30*time.Second),
		intake.WithDeadLetter(func(_ context.Context, d intake.DeadLetter) {
			log.Error(fmt.Sprintf("intake listen: event %s of %s is dead after %d attempts: %v; it is kept in %s (intake events list --db %s --state dead, then replay)",
				d.Event.ID, d.Event.Source, d.Attempts, d.Err, *state, *state))
		}))
	fmt.Fprintf(stderr, "listening to %s\n", *feedURL)
	err = stream.Run(ctx)
	if cause := context.Cause(ctx); errors.Is(cause, errRefused) {
		return cause
	}
	return err
}

// errRefused marks a relay's answer that retrying cannot heal.
var errRefused = errors.New("the relay refused")

// refusals wraps the relay's fetcher: a 401 or 403 (the token) or a 404
// (the URL) calls refuse with a cause that says what to fix.
func refusals(f poller.Fetcher, feedURL string, refuse context.CancelCauseFunc) poller.Fetcher {
	return poller.FetchFunc(func(ctx context.Context, cursor string) (poller.Page, error) {
		p, err := f.Fetch(ctx, cursor)
		var se *poller.StatusError
		if errors.As(err, &se) {
			switch se.Code {
			case http.StatusUnauthorized, http.StatusForbidden:
				refuse(fmt.Errorf("%w the token (%d %s): check --token or $INTAKE_RELAY_TOKEN against the relay's --token", errRefused, se.Code, http.StatusText(se.Code)))
			case http.StatusNotFound, http.StatusMethodNotAllowed:
				refuse(fmt.Errorf("%w %s (%d %s): check --relay; the relay serves its feed at /feed", errRefused, feedURL, se.Code, http.StatusText(se.Code)))
			}
		}
		return p, err
	})
}

// redactResign keeps --resign's scheme, never its secret.
func redactResign(v string) string {
	if scheme, _, ok := strings.Cut(v, ":"); ok {
		return scheme + ":…"
	}
	return v
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
func forwardEvent(ctx context.Context, client *http.Client, url string, e event.Event, resign *signer) error {
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
	// The context the event was created in, when the sender traced it:
	// the local endpoint's span links to it (W3C Trace Context).
	if l := tracing.FromMeta(e.Meta); l.Traceparent != "" {
		req.Header.Set("traceparent", l.Traceparent)
		if l.Tracestate != "" {
			req.Header.Set("tracestate", l.Tracestate)
		}
	}
	if resign != nil {
		m := &message{method: http.MethodPost, url: url, header: http.Header{}, body: e.Payload, id: e.ID, typ: e.Type, now: time.Now()}
		if ct := e.Meta["content-type"]; ct != "" {
			m.header.Set("Content-Type", ct)
		}
		if err := resign.p.sign(resign.secret, m); err != nil {
			return intake.Permanent(err)
		}
		req.URL, _ = req.URL.Parse(m.url) // Twilio's JSON bodies sign the URL with the body's hash
		for k, v := range m.header {
			req.Header[k] = v
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests:
		return &refusedError{fmt.Sprintf("forward %s to %s: %s", e.ID, url, resp.Status)}
	}
	return fmt.Errorf("forward %s to %s: %s", e.ID, url, resp.Status)
}

// refusedError is a forward the endpoint refused (a 4xx other than 408
// and 429): retrying the same request will not change its answer for
// long, so it ends in a dead letter after --attempts.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

// routes are where listen forwards: a URL per source, and one for every
// other source ("" for none).
type routes struct {
	by  map[string]string
	all string
}

func (r *routes) to(source string) string {
	if u, ok := r.by[source]; ok {
		return u
	}
	return r.all
}

// parseRoutes reads the --forward-to flags: URL, or source=URL. It
// returns nil when there are none (print the events).
func parseRoutes(flags []string) (*routes, error) {
	if len(flags) == 0 {
		return nil, nil
	}
	r := &routes{by: map[string]string{}}
	for _, f := range flags {
		source, url, ok := strings.Cut(f, "=")
		if !ok || strings.Contains(source, "/") || strings.Contains(source, ":") {
			source, url = "", f // a URL (its query may hold '=')
		}
		if err := checkURL("--forward-to", url); err != nil {
			return nil, err
		}
		if source == "" {
			if r.all != "" {
				return nil, usagef("--forward-to %q: a URL for every source is given twice", f)
			}
			r.all = url
			continue
		}
		if _, dup := r.by[source]; dup {
			return nil, usagef("--forward-to %q: the source %q is given twice", f, source)
		}
		r.by[source] = url
	}
	return r, nil
}
