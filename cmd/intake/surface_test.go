package main

// Regression tests for the CLI defects of issue #21 (items 3 to 9).

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

// runCLI runs the command line in this process and returns the exit
// code, stdout and stderr; a panic fails the test with its value.
func runCLI(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	func() {
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("intake %s panicked: %v", strings.Join(args, " "), r)
				code = -1
			}
		}()
		code = run(ctx, args, &out, &errb)
	}()
	return code, out.String(), errb.String()
}

// cliSecrets are a signing secret and the receiver's secret for each
// scheme the CLI knows (the same, but for the asymmetric schemes).
func cliSecrets(t *testing.T) map[string][2]string {
	t.Helper()
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	edPub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, _ := x509.MarshalPKCS8PrivateKey(ec)
	ecPub, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	whsec := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	m := map[string][2]string{
		"standard":  {whsec, whsec},
		"discord":   {hex.EncodeToString(seed), hex.EncodeToString(edPub)},
		"sendgrid":  {base64.StdEncoding.EncodeToString(ecPriv), base64.StdEncoding.EncodeToString(ecPub)},
		"meta":      {"verify-me:app-secret", "verify-me:app-secret"},
		"standard2": {"whsk_" + base64.StdEncoding.EncodeToString(seed), webhook.StandardWebhooksPublicKey(edPub)},
	}
	for _, p := range providers {
		if _, ok := m[p.name]; !ok {
			m[p.name] = [2]string{"s3cret", "s3cret"}
		}
	}
	return m
}

// receiverServer serves scheme's real webhook handler with the receiver's
// secret, on a sink that records what it stores.
func receiverServer(t *testing.T, scheme, secret string) (*httptest.Server, *storedIDs) {
	t.Helper()
	v, err := receiver(scheme, secret)
	if err != nil {
		t.Fatal(err)
	}
	ids := &storedIDs{seen: map[string]bool{}}
	h := webhook.New(scheme, v, webhook.WithReplayGuard(nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, ids) }()
	t.Cleanup(func() { cancel(); <-done })
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	// Wait for Run: an unsigned POST gets 503 before, a refusal after.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			break
		}
	}
	return srv, ids
}

// storedIDs is a sink that dedupes by id, as a stream does, and records
// the ids it stored.
type storedIDs struct {
	mu   sync.Mutex
	seen map[string]bool
	ids  []string
}

func (s *storedIDs) Put(_ context.Context, e event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[e.ID] {
		return event.ErrDuplicate
	}
	s.seen[e.ID] = true
	s.ids = append(s.ids, e.ID)
	return nil
}

func (s *storedIDs) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

// Items 5 and 6: send signs for every scheme the webhook package
// verifies, and prints the id the receiver stores; sending the same --id
// twice is one event.
func TestSendEveryScheme(t *testing.T) {
	secrets := cliSecrets(t)
	names := []string{"standard2"}
	for _, p := range providers {
		names = append(names, p.name)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			scheme := strings.TrimSuffix(name, "2")
			sec := secrets[name]
			if p, _ := lookup(scheme); p.notifyOnly {
				sendNotification(t, p, sec)
				return
			}
			srv, stored := receiverServer(t, scheme, sec[1])
			for range 2 {
				code, out, errOut := runCLI(t, context.Background(), "send", "--scheme", scheme, "--secret", sec[0], "--url", srv.URL+"/hooks/x?account=1", "--id", "Ev2", "--type", "thing.happened")
				if code != 0 {
					t.Fatalf("exit %d: %s %s", code, out, errOut)
				}
				got := stored.list()
				if len(got) != 1 {
					t.Fatalf("stored %v, want one event", got)
				}
				if first, _, _ := strings.Cut(out, "\n"); !strings.HasSuffix(first, " "+got[0]) {
					t.Fatalf("printed %q; the receiver stored %q", first, got[0])
				}
			}
		})
	}
}

// sendNotification sends a notification-only scheme's message twice to
// its real handler: each is accepted and triggers the paired poll.
func sendNotification(t *testing.T, p *provider, sec [2]string) {
	t.Helper()
	var triggers sync.WaitGroup
	triggers.Add(2)
	h := webhook.New(p.name, p.verifier(sec[1]), webhook.WithTrigger(triggers.Done), webhook.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, &storedIDs{seen: map[string]bool{}}) }()
	t.Cleanup(func() { cancel(); <-done })
	<-h.Started()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	for range 2 {
		code, out, errOut := runCLI(t, context.Background(), "send", "--scheme", p.name, "--secret", sec[0], "--url", srv.URL, "--id", "Ev2", "--type", "exists")
		if code != 0 {
			t.Fatalf("exit %d: %s %s", code, out, errOut)
		}
	}
	triggers.Wait() // each notification triggered the poll
}

// Item 5: with --file, the printed id is the one in the body.
func TestSendFilePrintsTheBodysID(t *testing.T) {
	srv, stored := receiverServer(t, "stripe", "whsec_x")
	path := filepath.Join(t.TempDir(), "evt.json")
	if err := os.WriteFile(path, []byte(`{"id":"evt_file","type":"invoice.paid","created":1,"data":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, context.Background(), "send", "--scheme", "stripe", "--secret", "whsec_x", "--url", srv.URL, "--file", path, "--id", "other")
	if code != 0 || !strings.HasPrefix(out, "202 Accepted evt_file\n") {
		t.Fatalf("exit %d, printed %q %s", code, out, errOut)
	}
	if got := stored.list(); len(got) != 1 || got[0] != "evt_file" {
		t.Fatalf("stored %v", got)
	}
	if !strings.Contains(errOut, `--id "other" is not the id`) {
		t.Errorf("no note that --id was not used: %q", errOut)
	}
}

// Item 6: the handshakes, answered by the real handler, store nothing.
func TestSendHandshakes(t *testing.T) {
	secrets := cliSecrets(t)
	for _, p := range providers {
		if p.handshake == nil {
			continue
		}
		t.Run(p.name, func(t *testing.T) {
			sec := secrets[p.name]
			srv, stored := receiverServer(t, p.name, sec[1])
			code, out, errOut := runCLI(t, context.Background(), "send", "--scheme", p.name, "--secret", sec[0], "--url", srv.URL, "--handshake")
			if code != 0 || !strings.HasPrefix(out, "200 OK handshake") {
				t.Fatalf("exit %d: %q %s", code, out, errOut)
			}
			if got := stored.list(); len(got) != 0 {
				t.Fatalf("a handshake stored %v", got)
			}
		})
	}
	code, _, errOut := runCLI(t, context.Background(), "send", "--scheme", "github", "--secret", "s", "--url", "http://127.0.0.1:1/", "--handshake")
	if code != 2 || !strings.Contains(errOut, "slack") {
		t.Errorf("--handshake for github: exit %d, %q", code, errOut)
	}
}

// Items 3, 4, 8 and 9: every command line to fix is one line on stderr
// and exit 2, never a panic, and nothing starts.
func TestCommandLinesToFix(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "r.db")
	relay := func(extra ...string) []string {
		return append([]string{"relay", "--addr", "127.0.0.1:0", "--db", db}, extra...)
	}
	tests := []struct {
		name string
		env  string // INTAKE_RELAY_TOKENS
		args []string
		want string // in the one line
	}{
		{"relay empty token", "", relay("--source", "github:github:s", "--token", ""), "empty"},
		{"relay empty token in the environment", "a,,b", relay("--source", "github:github:s"), "token 2 of"},
		{"relay two sources of one name", "", relay("--source", "github:github:s", "--source", "github:stripe:s", "--token", "t"), "twice"},
		{"relay unknown scheme", "", relay("--source", "x:nope:s", "--token", "t"), "unknown scheme"},
		{"relay malformed source", "", relay("--source", "github", "--token", "t"), "name:scheme:secret"},
		{"relay unusable secret", "", relay("--source", "d:discord:not-hex", "--token", "t"), "discord"},
		{"relay name not a path segment", "", relay("--source", "a/{b}:github:s", "--token", "t"), "path"},
		{"relay no such directory", "", []string{"relay", "--source", "g:github:s", "--token", "t", "--db", "/nonexistent/dir/r.db"}, "does not exist"},
		{"relay extra argument", "", relay("--source", "g:github:s", "--token", "t", "extra"), "unexpected argument"},
		{"send unknown scheme", "", []string{"send", "--scheme", "bogus", "--secret", "s", "--url", "http://127.0.0.1:1/"}, "unknown scheme"},
		{"send missing flags", "", []string{"send", "--scheme", "github"}, "required"},
		{"send bad url", "", []string{"send", "--scheme", "github", "--secret", "s", "--url", "not-a-url"}, "--url"},
		{"send no such file", "", []string{"send", "--scheme", "github", "--secret", "s", "--url", "http://127.0.0.1:1/", "--file", "/nonexistent/evt.json"}, "--file"},
		{"events bogus state", "", []string{"events", "list", "--db", db, "--state", "bogus"}, "--state"},
		{"events unknown command", "", []string{"events", "explode", "--db", db}, "explode"},
		{"events two keys", "", []string{"events", "show", "--db", db, "k1", "k2"}, "unexpected argument"},
		{"listen resign unknown", "", []string{"listen", "--relay", "http://127.0.0.1:1/feed", "--token", "t", "--forward-to", "http://127.0.0.1:1/", "--resign", "foo"}, "--resign"},
		{"listen resign gitlab without forward", "", []string{"listen", "--relay", "http://127.0.0.1:1/feed", "--token", "t", "--resign", "gitlab:x"}, "--forward-to"},
		{"listen relay not a url", "", []string{"listen", "--relay", "not-a-url", "--token", "t"}, "--relay"},
		{"listen forward not a url", "", []string{"listen", "--relay", "http://127.0.0.1:1/feed", "--token", "t", "--forward-to", "not-a-url"}, "--forward-to"},
		{"listen forward source not a url", "", []string{"listen", "--relay", "http://127.0.0.1:1/feed", "--token", "t", "--forward-to", "github=not-a-url"}, "--forward-to"},
		{"listen forward source twice", "", []string{"listen", "--relay", "http://127.0.0.1:1/feed", "--token", "t", "--forward-to", "github=http://127.0.0.1:1/a", "--forward-to", "github=http://127.0.0.1:1/b"}, "twice"},
		{"listen attempts zero", "", []string{"listen", "--relay", "http://127.0.0.1:1/feed", "--token", "t", "--forward-to", "http://127.0.0.1:1/", "--attempts", "0"}, "--attempts"},
		{"relay secret env unset", "", relay("--source", "g:github:env:INTAKE_TEST_NOT_SET_ANYWHERE", "--token", "t"), "INTAKE_TEST_NOT_SET_ANYWHERE"},
		{"relay notification-only scheme", "", relay("--source", "d:dropbox:s3cret", "--token", "t"), "notification-only"},
		{"listen no such directory", "", []string{"listen", "--relay", "http://127.0.0.1:1/feed", "--token", "t", "--state", "/nonexistent/dir/l.db"}, "does not exist"},
		// A directory where the database file goes: SQLite said "unable to
		// open database file: out of memory (14)", with exit 1.
		{"relay db a directory", "", []string{"relay", "--addr", "127.0.0.1:0", "--source", "g:github:s", "--token", "t", "--db", dir}, "is a directory"},
		{"listen state a directory", "", []string{"listen", "--relay", "http://127.0.0.1:1/feed", "--token", "t", "--state", dir}, "is a directory"},
		{"events db a directory", "", []string{"events", "list", "--db", dir}, "is a directory"},
		{"events limit zero", "", []string{"events", "list", "--db", db, "--limit", "0"}, "--limit"},
		// An empty file name: SQLite made a private temporary database for
		// each connection, so the relay and listen ran with tables that
		// vanished ("no such table", retried forever).
		{"relay db empty", "", []string{"relay", "--addr", "127.0.0.1:0", "--source", "g:github:s", "--token", "t", "--db", ""}, "--db"},
		{"listen state empty", "", []string{"listen", "--relay", "http://127.0.0.1:1/feed", "--token", "t", "--state", ""}, "--state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("INTAKE_RELAY_TOKENS", tt.env)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			code, out, errOut := runCLI(t, ctx, tt.args...)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stdout %q stderr %q", code, out, errOut)
			}
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Fatalf("stderr %q: want one line naming %q", errOut, tt.want)
			}
			if strings.Contains(errOut, "s3cret") {
				t.Fatalf("a secret in the error: %q", errOut)
			}
		})
	}
	if _, err := os.Stat(db); err == nil {
		t.Errorf("a command line to fix created %s", db)
	}
}

// Item 8: help is asked for, not an error: exit 0, on stdout, for the
// program and for each command.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"relay", "--help"}, {"listen", "-h"}, {"send", "--help"}, {"events", "--help"}, {"events", "list", "-h"}} {
		code, out, errOut := runCLI(t, context.Background(), args...)
		if code != 0 || !strings.Contains(out, "Usage") || errOut != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	_, out, _ := runCLI(t, context.Background(), "send", "--help")
	for _, p := range providers {
		if !strings.Contains(out, "  "+p.name+" ") {
			t.Errorf("send --help does not list %s", p.name)
		}
	}
}

// Item 7: a relay that refuses the token (401) or has no feed at the URL
// (404) stops listen at once with exit 1 and the cause; a 503 is retried.
func TestListenFailsFastOnRefusal(t *testing.T) {
	for _, tt := range []struct {
		status int
		want   string
	}{
		{http.StatusUnauthorized, "--token"},
		{http.StatusNotFound, "--relay"},
	} {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, http.StatusText(tt.status), tt.status)
			}))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			code, _, errOut := runCLI(t, ctx, "listen", "--relay", srv.URL+"/feed", "--token", "wrong",
				"--state", filepath.Join(t.TempDir(), "l.db"))
			if ctx.Err() != nil {
				t.Fatal("listen kept retrying a refusal")
			}
			last := strings.TrimSpace(errOut)
			if i := strings.LastIndex(last, "\n"); i >= 0 {
				last = last[i+1:]
			}
			if code != 1 || !strings.Contains(last, tt.want) || !strings.HasPrefix(last, "intake listen: the relay refused") {
				t.Fatalf("exit %d, last line %q", code, last)
			}
		})
	}
	t.Run("503 is retried", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}))
		defer srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		code, _, errOut := runCLI(t, ctx, "listen", "--relay", srv.URL+"/feed", "--token", "t",
			"--state", filepath.Join(t.TempDir(), "l.db"))
		if code != 0 {
			t.Fatalf("an outage stopped listen: exit %d: %s", code, errOut)
		}
	})
}

// Item 8: the README's intake events list --console against intake relay
// reads the relay's console.
func TestRelayServesAConsole(t *testing.T) {
	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		code, _, _ := runCLI(t, ctx, "relay", "--addr", addr, "--source", "github:github:s", "--token", "t",
			"--db", filepath.Join(t.TempDir(), "r.db"))
		done <- code
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("relay exit %d", code)
		}
	}()
	waitReady(t, "http://"+addr+"/readyz")
	code, out, errOut := runCLI(t, context.Background(), "events", "list", "--console", "http://"+addr+"/intake/", "--state", "all")
	if code != 0 || !strings.HasPrefix(out, "SEQ") {
		t.Fatalf("exit %d: %q %q", code, out, errOut)
	}
}
