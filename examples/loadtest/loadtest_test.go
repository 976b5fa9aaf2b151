package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/intakehq/intake/backend/nats/natstest"
	"github.com/intakehq/intake/internal/testenv"
)

func TestLoadtestSmall(t *testing.T) {
	results, err := run(config{n: 300, duration: 3 * time.Second, clients: 8, dup: 0.3, work: 5 * time.Millisecond, size: 512, rounds: 1})
	if err != nil {
		t.Fatal(err)
	}
	// bare, memory, memory with a slow subscriber, SQLite, SQLite with no
	// effect, with HandleTx, with HandleTxBatch, naive.
	if len(results) != 8 {
		t.Fatalf("%d targets", len(results))
	}
	for _, r := range results {
		if r.Requests == 0 || r.PerSecond <= 0 || r.P50us <= 0 || r.P99us < r.P50us {
			t.Errorf("%s: implausible %+v", r.Target, r)
		}
		if r.Non2xx != 0 {
			t.Errorf("%s: %d requests without a 2xx (or 409 for a duplicate)", r.Target, r.Non2xx)
		}
	}
	if results[0].Ratio != 1 {
		t.Errorf("bare ratio %v", results[0].Ratio)
	}
}

func TestPollLoadSmall(t *testing.T) {
	polls, err := pollLoad(1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(polls) != 2 || polls[1].Events != 1000 || polls[1].Requests < 10 || polls[1].PerSecond <= 0 {
		t.Fatalf("%+v", polls)
	}
}

// The durable targets on the real servers — intake on Postgres (one
// replica and three) and Redis, and the River receiver — each handle every
// acknowledged delivery once; and the backlog drains once on both. When a
// server is missing the test skips saying how to start it, except under
// CI=true, where it fails.
func TestDurableTargetsSmall(t *testing.T) {
	testenv.SkipUnlessLong(t)
	srv := connect(context.Background(), envOr("INTAKE_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), envOr("INTAKE_REDIS_ADDR", "127.0.0.1:6379"))
	defer srv.close()
	if srv.pg == nil || srv.redis == nil {
		msg := fmt.Sprintf("%v; start PostgreSQL with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` and Redis with `redis-server --daemonize yes`", srv.notes)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	results, err := run(config{n: 400, duration: 5 * time.Second, clients: 8, dup: 0.3, size: 512, rounds: 1, servers: srv, only: regexp.MustCompile("queue")})
	if err != nil {
		t.Fatal(err)
	}
	results2, err := run(config{n: 400, duration: 5 * time.Second, clients: 8, dup: 0.3, size: 512, rounds: 1, servers: srv, only: regexp.MustCompile("River")})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, r := range append(results, results2[1:]...) {
		names[r.Target] = true
		if r.Non2xx != 0 {
			t.Errorf("%s: %d requests without a 2xx", r.Target, r.Non2xx)
		}
		if strings.HasPrefix(r.Target, "bare") {
			continue
		}
		if !r.Counted || r.Unique == 0 || r.TwiceAll != 0 || r.LostAll != 0 {
			t.Errorf("%s: %d unique acknowledged, %d handled twice, %d lost (counted %v)", r.Target, r.Unique, r.TwiceAll, r.LostAll, r.Counted)
		}
	}
	for _, want := range []string{"intake, Postgres queue", "intake, Postgres queue, 3 replicas", "intake, Redis queue", "River: verify, Insert (unique by delivery), worker"} {
		if !names[want] {
			t.Errorf("no %q target in %v", want, names)
		}
	}
	bs, err := backlogLoad(srv, 2000, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 {
		t.Fatalf("%d backlog lines", len(bs))
	}
	for _, b := range bs {
		if b.Twice != 0 || b.Lost != 0 || b.DrainPerSecond <= 0 || b.LoadPerSecond <= 0 {
			t.Errorf("%+v", b)
		}
	}
}

func TestPick(t *testing.T) {
	names := []string{"bare net/http: read body, 200 (the ceiling)", "intake, memory stream", "intake, Postgres queue", "intake, Postgres queue, 3 replicas", "intake, Redis queue"}
	var targets []target
	for _, n := range names {
		targets = append(targets, target{name: n})
	}
	for _, tc := range []struct {
		only string
		want []string
	}{
		{"", names},
		{"Postgres queue$", []string{names[0], names[2]}},
		{"Postgres", []string{names[0], names[2], names[3]}},
		{"replicas|Redis", []string{names[0], names[3], names[4]}},
		{"nothing like it", []string{names[0]}},
	} {
		var only *regexp.Regexp
		if tc.only != "" {
			only = regexp.MustCompile(tc.only)
		}
		var got []string
		for _, tg := range pick(slices.Clone(targets), only) {
			got = append(got, tg.name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("-only %q: %q, want %q", tc.only, got, tc.want)
		}
	}
}

// The JetStream targets on a node of the test's own, syncing every write:
// one queue, and the same load spread over four queue names, each
// handle every acknowledged delivery once (a duplicate meets its first
// copy on the same queue).
func TestJetStreamTargetsSmall(t *testing.T) {
	testenv.SkipUnlessLong(t)
	bin, err := natstest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	c, err := natstest.Start(bin, t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if err := c.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	js := &jetstreams{servers: []jsServer{{c, 1, "always"}}}
	results, err := run(config{n: 400, duration: 5 * time.Second, clients: 8, dup: 0.3, size: 512, rounds: 1, js: js, only: regexp.MustCompile("JetStream")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bare net/http: read body, 200 (the ceiling)", "intake, JetStream queue, R1", "intake, JetStream queue, R1, 4 queue names"}
	var got []string
	for _, r := range results {
		got = append(got, r.Target)
		if r.Non2xx != 0 {
			t.Errorf("%s: %d requests without a 2xx", r.Target, r.Non2xx)
		}
		if strings.HasPrefix(r.Target, "bare") {
			continue
		}
		if !r.Counted || r.Unique == 0 || r.TwiceAll != 0 || r.LostAll != 0 {
			t.Errorf("%s: %d unique acknowledged, %d handled twice, %d lost", r.Target, r.Unique, r.TwiceAll, r.LostAll)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("targets %q, want %q", got, want)
	}
}
