package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/console"
	"github.com/intakehq/intake/fleet"
)

// TestConnectionsCommands manages a fleet's connections through a
// running console and through the SQLite file itself: both see the same
// store, as every replica does.
func TestConnectionsCommands(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "fleet.db")
	b, err := sqlite.Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := fleet.New("accounts", b.Connections(), fleet.WithLogger(quiet))
	srv := httptest.NewServer(http.StripPrefix("/intake", console.New(intake.New(intake.WithLogger(quiet)), console.WithFleet(f))))
	defer srv.Close()
	ctx := context.Background()
	cli := func(args ...string) (string, int) {
		code, out, errs := runCLI(t, ctx, append([]string{"connections"}, args...)...)
		return out + errs, code
	}
	web := []string{"--console", srv.URL + "/intake/"}
	file := []string{"--db", dbPath}
	steps := []struct {
		args []string
		code int
		want string
	}{
		{append([]string{"add", "shop-1", "--source", "shopify", "--interval", "10m", "--credential", "vault:shop-1"}, web...), 0, "add shop-1"},
		{append([]string{"add", "--source", "stripe", "acct_2"}, file...), 0, "add acct_2"},
		{append([]string{"add", "shop-1", "--source", "shopify"}, file...), 1, "connection exists"},
		{append([]string{"add", "shop-3"}, web...), 2, "add needs --source"},
		{append([]string{"add", "shop-3", "--source", "s", "--interval", "soon"}, web...), 2, "--interval \"soon\""},
		{append([]string{"pause", "shop-1"}, web...), 2, "pause needs --by"},
		{append([]string{"pause", "shop-1", "--by", "ops@example.com", "--reason", "customer asked"}, web...), 0, "pause shop-1"},
		{append([]string{"pause", "nope", "--by", "ops"}, file...), 1, "no such connection"},
		{append([]string{"list", "--state", "paused"}, file...), 0, "paused by ops@example.com: customer asked"},
		{append([]string{"list", "--state", "sleeping"}, file...), 2, "--state \"sleeping\""},
		{append([]string{"update", "acct_2"}, web...), 2, "update needs --interval or --credential"},
		{append([]string{"update", "acct_2", "--credential", "vault:acct_2b"}, web...), 0, "update acct_2"},
		{append([]string{"show", "acct_2"}, file...), 0, `"credential": "vault:acct_2b"`},
		{append([]string{"resync", "acct_2", "--cursor", "2026-12-01T00:00:00Z"}, web...), 0, "resync acct_2"},
		{append([]string{"show", "acct_2"}, web...), 0, `"cursor": "2026-12-01T00:00:00Z"`},
		{append([]string{"resume", "shop-1"}, file...), 0, "resume shop-1"},
		{append([]string{"list"}, web...), 0, "shop-1"},
		{append([]string{"remove", "shop-1"}, web...), 0, "remove shop-1"},
		{append([]string{"show", "shop-1"}, file...), 1, "no such connection"},
		{[]string{"list"}, 2, "say where"},
		{append([]string{"explode"}, web...), 2, "unknown command"},
		{append([]string{"show"}, web...), 2, "ID is required"},
		{append([]string{"list", "--limit", "0"}, web...), 2, "--limit 0"},
	}
	for _, s := range steps {
		out, code := cli(s.args...)
		if code != s.code || !strings.Contains(out, s.want) {
			t.Fatalf("intake connections %s: exit %d, want %d with %q:\n%s", strings.Join(s.args, " "), code, s.code, s.want, out)
		}
	}
	c, err := f.Get(ctx, "acct_2")
	if err != nil || c.Source != "stripe" || c.Credential != "vault:acct_2b" {
		t.Fatalf("acct_2: %+v, %v", c, err)
	}
}
