package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/relay"
	"github.com/intakehq/intake/webhook"
)

// list is a repeatable flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func relayCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("intake relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sources, tokens list
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	fs.Var(&sources, "source", "a webhook source, name:scheme:secret (repeatable); scheme is stripe, github, shopify, slack or standard")
	fs.Var(&tokens, "token", "a bearer token the feed accepts (repeatable, for rotation); also $INTAKE_RELAY_TOKENS, comma-separated")
	db := fs.String("db", "relay.db", "SQLite file for the queue and the feed")
	dsn := fs.String("postgres", "", "a PostgreSQL DSN instead of --db: several relay replicas share one feed")
	retention := fs.Duration("retention", relay.DefaultRetention, "how long the feed keeps events")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: intake relay --source NAME:SCHEME:SECRET --token T [--addr A] [--db F | --postgres DSN]\n\n"+
			"Receives webhooks at POST /hooks/<name>, verifies them, keeps them, and serves them\n"+
			"at GET /feed to consumers that long-poll it (intake listen, or relay.Fetcher).\n"+
			"GET /readyz is its readiness check.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if env := os.Getenv("INTAKE_RELAY_TOKENS"); env != "" {
		tokens = append(tokens, strings.Split(env, ",")...)
	}
	if len(sources) == 0 || len(tokens) == 0 {
		fs.Usage()
		fmt.Fprintln(stderr, "\nintake relay: at least one --source and one --token are required")
		return errUsage
	}

	var (
		queue dedupe.Queue
		feed  relay.Feed
	)
	if *dsn != "" {
		pg, err := postgres.Open(ctx, *dsn)
		if err != nil {
			return err
		}
		defer pg.Close()
		queue, feed = pg, pg.Feed()
	} else {
		sq, err := sqlite.Open(*db)
		if err != nil {
			return err
		}
		defer sq.Close()
		queue, feed = sq, sq.Feed()
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	stream := intake.New(intake.WithQueue(queue), intake.WithLogger(log))
	mux := http.NewServeMux()
	var names []string
	for _, spec := range sources {
		name, scheme, secret, err := parseSource(spec)
		if err != nil {
			return err
		}
		v, err := verifier(scheme, secret)
		if err != nil {
			return err
		}
		hook := webhook.New(name, v, webhook.WithKeepHeaders(), webhook.WithLogger(log))
		stream.Add(hook)
		mux.Handle("POST /hooks/"+name, hook)
		names = append(names, name)
	}
	rl := relay.New(feed, *retention)
	stream.Handle(rl.Store, intake.WithName("relay"), intake.WithWorkers(4))
	mux.Handle("GET /feed", relay.NewHandler(feed, tokens, relay.WithLogger(log)))
	mux.Handle("GET /readyz", stream.HealthHandler())

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Fprintf(stdout, "relay listening on http://%s: webhooks at /hooks/{%s}, feed at /feed, readiness at /readyz\n",
		ln.Addr(), strings.Join(names, ","))
	err = stream.Run(ctx)
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	return err
}

// parseSource reads name:scheme:secret (the secret may hold colons).
func parseSource(spec string) (name, scheme, secret string, err error) {
	parts := strings.SplitN(spec, ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
		return "", "", "", fmt.Errorf("--source %q: want name:scheme:secret, e.g. stripe:stripe:whsec_…", redact(spec))
	}
	return parts[0], parts[1], parts[2], nil
}

// redact keeps a source spec's name and scheme, never its secret.
func redact(spec string) string {
	parts := strings.SplitN(spec, ":", 3)
	if len(parts) == 3 {
		parts[2] = "…"
	}
	return strings.Join(parts, ":")
}

func verifier(scheme, secret string) (*webhook.Scheme, error) {
	switch scheme {
	case "stripe":
		return webhook.Stripe(secret), nil
	case "github":
		return webhook.GitHub(secret), nil
	case "shopify":
		return webhook.Shopify(secret), nil
	case "slack":
		return webhook.Slack(secret), nil
	case "standard", "svix":
		return webhook.StandardWebhooks(secret), nil
	}
	return nil, errors.New("unknown scheme " + scheme + "; one of stripe, github, shopify, slack, standard")
}
