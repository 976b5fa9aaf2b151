package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/console"
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
	fs.Var(&sources, "source", "a webhook source, name:scheme:secret (repeatable); the secret may be env:VAR or file:PATH to keep it out of ps; scheme is one of "+schemeNames())
	fs.Var(&tokens, "token", "a bearer token the feed accepts (repeatable, for rotation); also $INTAKE_RELAY_TOKENS, comma-separated")
	db := fs.String("db", "relay.db", "SQLite file for the queue and the feed")
	dsn := fs.String("postgres", "", "a PostgreSQL DSN instead of --db: several relay replicas share one feed")
	retention := fs.Duration("retention", relay.DefaultRetention, "how long the feed keeps events")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: intake relay --source NAME:SCHEME:SECRET --token T [--addr A] [--db F | --postgres DSN]\n\n"+
			"Receives webhooks at POST /hooks/<name>, verifies them, keeps them, and serves them\n"+
			"at GET /feed to consumers that long-poll it (intake listen, or relay.Fetcher).\n"+
			"GET /readyz is its readiness check; /intake/ its console (loopback clients only),\n"+
			"which intake events --console reads.\n\n")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout, 0); err != nil {
		return err
	}
	if env := os.Getenv("INTAKE_RELAY_TOKENS"); env != "" {
		tokens = append(tokens, strings.Split(env, ",")...)
	}
	if len(sources) == 0 || len(tokens) == 0 {
		return usagef("at least one --source and one --token (or $INTAKE_RELAY_TOKENS) are required (intake relay -h)")
	}
	for i, tok := range tokens {
		if strings.TrimSpace(tok) == "" {
			return usagef("token %d of %d is empty (--token or $INTAKE_RELAY_TOKENS): every token must be non-empty", i+1, len(tokens))
		}
	}
	if *retention <= 0 {
		return usagef("--retention %v: must be positive", *retention)
	}
	type hookSpec struct {
		name string
		v    *webhook.Scheme
	}
	var hooks []hookSpec
	seen := map[string]bool{}
	for _, spec := range sources {
		name, scheme, secret, err := parseSource(spec)
		if err != nil {
			return err
		}
		if seen[name] {
			return usagef("--source %q: the name %q is given twice; each source needs a name of its own", redact(spec), name)
		}
		seen[name] = true
		v, err := receiver(scheme, secret)
		if err != nil {
			return usagef("--source %q: %v", redact(spec), err)
		}
		hooks = append(hooks, hookSpec{name, v})
	}
	if *dsn == "" {
		if err := checkDBFile("--db", *db); err != nil {
			return err
		}
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return usagef("--addr %q: want host:port, e.g. 127.0.0.1:8080", *addr)
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
	for _, hs := range hooks {
		hook := webhook.New(hs.name, hs.v, webhook.WithKeepHeaders(), webhook.WithLogger(log))
		stream.Add(hook)
		mux.Handle("/hooks/"+hs.name, hook) // the handler answers other methods 405 itself
		names = append(names, hs.name)
	}
	rl := relay.New(feed, *retention)
	stream.Handle(rl.Store, intake.WithName("relay"), intake.WithWorkers(4))
	mux.Handle("GET /feed", relay.NewHandler(feed, tokens, relay.WithLogger(log)))
	mux.Handle("GET /readyz", stream.HealthHandler())
	mux.Handle("/intake/", http.StripPrefix("/intake", console.New(stream, console.WithLogger(log))))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Fprintf(stdout, "relay listening on http://%s: webhooks at /hooks/{%s}, feed at /feed, readiness at /readyz, console at /intake/\n",
		ln.Addr(), strings.Join(names, ","))
	err = stream.Run(ctx)
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	return err
}

// parseSource reads name:scheme:secret (the secret may hold colons).
// A secret of env:VAR is read from the environment variable VAR, and
// file:PATH from the file PATH (one trailing newline dropped), so that it
// need not be on the command line, where ps shows it.
func parseSource(spec string) (name, scheme, secret string, err error) {
	parts := strings.SplitN(spec, ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", usagef("--source %q: want name:scheme:secret, e.g. stripe:stripe:whsec_…, or name:scheme:env:VAR, name:scheme:file:PATH", redact(spec))
	}
	if !validName(parts[0]) {
		return "", "", "", usagef("--source %q: the name %q is the path /hooks/<name>: letters, digits, '.', '_' and '-' only", redact(spec), parts[0])
	}
	secret, err = readSecret(parts[2])
	if err != nil {
		return "", "", "", usagef("--source %q: %v", redact(spec), err)
	}
	return parts[0], parts[1], secret, nil
}

// readSecret resolves env:VAR and file:PATH; any other value is the
// secret itself.
func readSecret(v string) (string, error) {
	if name, ok := strings.CutPrefix(v, "env:"); ok {
		s := os.Getenv(name)
		if s == "" {
			return "", fmt.Errorf("the environment variable %s is empty or unset", name)
		}
		return s, nil
	}
	if path, ok := strings.CutPrefix(v, "file:"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("the secret's file: %w", err)
		}
		s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if s == "" {
			return "", fmt.Errorf("the secret's file %s is empty", path)
		}
		return s, nil
	}
	return v, nil
}

// validName reports whether name is a plain path segment.
func validName(name string) bool {
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return name != "" && name != "." && name != ".."
}

// redact keeps a source spec's name and scheme, never its secret (the
// name of its variable or file, which is no secret, is kept).
func redact(spec string) string {
	parts := strings.SplitN(spec, ":", 3)
	if len(parts) == 3 && !strings.HasPrefix(parts[2], "env:") && !strings.HasPrefix(parts[2], "file:") {
		parts[2] = "…"
	}
	return strings.Join(parts, ":")
}

// checkDBFile checks that a database file flag names no directory and a
// file in a directory that exists, so that SQLite's "unable to open
// database file" (with "out of memory" for a directory) never has to be
// read.
func checkDBFile(flagName, file string) error {
	if file == "" {
		return usagef("%s is empty; name a database file", flagName)
	}
	if st, err := os.Stat(file); err == nil && st.IsDir() {
		return usagef("%s %q is a directory; name a database file", flagName, file)
	}
	dir := filepath.Dir(file)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return usagef("%s %q: the directory %q does not exist", flagName, file, dir)
	case err != nil:
		return usagef("%s %q: %v", flagName, file, err)
	case !st.IsDir():
		return usagef("%s %q: %q is not a directory", flagName, file, dir)
	}
	return nil
}
