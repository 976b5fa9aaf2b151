package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fleet"
	"github.com/intakehq/intake/poller"
)

// The environment of a replica process.
const (
	envMode     = "FLEETLOAD_CHILD" // "fleet" or "pollers"
	envDSN      = "FLEETLOAD_DSN"
	envPrefix   = "FLEETLOAD_PREFIX"
	envAPI      = "FLEETLOAD_API"
	envName     = "FLEETLOAD_NAME"
	envLog      = "FLEETLOAD_LOG"
	envLease    = "FLEETLOAD_LEASE"
	envInterval = "FLEETLOAD_INTERVAL"
	envPollers  = "FLEETLOAD_POLLERS"
)

// ChildStats is what a replica says at /stats.
type ChildStats struct {
	Polls  int64 `json:"polls"`
	Late   int64 `json:"late"`
	Events int64 `json:"events"`
	Lost   int64 `json:"lost"`
	Errors int64 `json:"errors"`
	RSSKiB int64 `json:"rss_kib"`
}

// childMain runs a replica when the environment asks for one; it
// returns false otherwise.
func childMain() bool {
	mode := os.Getenv(envMode)
	if mode == "" {
		return false
	}
	if err := child(mode); err != nil {
		fmt.Fprintln(os.Stderr, "fleetload child:", err)
		os.Exit(1)
	}
	os.Exit(0)
	return true
}

func child(mode string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lease, _ := time.ParseDuration(os.Getenv(envLease))
	interval, _ := time.ParseDuration(os.Getenv(envInterval))
	pool, err := pgxpool.New(ctx, os.Getenv(envDSN))
	if err != nil {
		return err
	}
	defer pool.Close()
	pg, err := postgres.New(ctx, pool, postgres.WithPrefix(os.Getenv(envPrefix)))
	if err != nil {
		return err
	}
	defer pg.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	name, apiURL := os.Getenv(envName), os.Getenv(envAPI)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 10 * time.Second}
	list := func(ctx context.Context, conn, cursor string) (poller.Page, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, apiURL+"?conn="+conn+"&cursor="+cursor, nil)
		req.Header.Set("X-Replica", name)
		resp, err := client.Do(req)
		if err != nil {
			return poller.Page{}, err
		}
		defer resp.Body.Close()
		var l listing
		if err := json.NewDecoder(resp.Body).Decode(&l); err != nil {
			return poller.Page{}, err
		}
		pg := poller.Page{Next: l.Next}
		for _, it := range l.Items {
			pg.Events = append(pg.Events, event.Event{ID: it, Type: "item", Payload: []byte(`{"id":"` + it + `"}`)})
		}
		return pg, nil
	}

	stats := func() ChildStats { return ChildStats{} }
	var s *intake.Stream
	switch mode {
	case "fleet":
		logf, err := os.OpenFile(os.Getenv(envLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer logf.Close()
		s = intake.New(intake.WithQueue(pg), intake.WithLogger(quiet))
		s.Handle(func(_ context.Context, e event.Event) error {
			_, err := logf.WriteString(e.ID + "\n") // one write: a SIGKILL loses none written
			return err
		}, intake.WithName("items"))
		f := fleet.New("accounts", pg.Connections(), fleet.WithLease(lease), fleet.WithInterval(interval),
			fleet.WithHolder(name), fleet.WithLogger(quiet))
		f.Source("api", func(ctx context.Context, c fleet.Connection, cursor string) (poller.Page, error) {
			return list(ctx, c.ID, cursor)
		})
		s.Add(f)
		stats = func() ChildStats {
			st := f.Stats()
			return ChildStats{Polls: st.Polls, Late: st.Late, Events: st.Events, Lost: st.Lost, Errors: st.Errors}
		}
	case "pollers":
		// Today's way: one poller per connection, each with its own
		// Postgres lease and checkpoint.
		n, _ := strconv.Atoi(os.Getenv(envPollers))
		s = intake.New(intake.WithQueue(pg), intake.WithLogger(quiet))
		s.Handle(func(context.Context, event.Event) error { return nil }, intake.WithName("items"))
		var polls atomic.Int64
		for i := range n {
			id := fmt.Sprintf("c%06d", i)
			s.Add(poller.New("api-"+id, poller.FetchFunc(func(ctx context.Context, cursor string) (poller.Page, error) {
				polls.Add(1)
				return list(ctx, id, cursor)
			}), poller.Every(interval), poller.WithLease(pg.Lease(), lease), poller.WithCheckpoint(pg.Checkpoint()), poller.WithLogger(quiet)))
		}
		stats = func() ChildStats { return ChildStats{Polls: polls.Load()} }
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st := stats()
			st.RSSKiB = rss()
			_ = json.NewEncoder(w).Encode(st)
		}))
	}()
	fmt.Println("http://" + ln.Addr().String())
	go func() {
		// The parent closes stdin to stop a replica cleanly.
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	return s.Run(ctx)
}

// rss returns the process's resident set, in KiB.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			n, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return n
		}
	}
	return 0
}
