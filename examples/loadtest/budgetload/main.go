// Command budgetload measures a shared request budget: connections of a
// poller fleet that share one credential, on several replicas, against a
// fake API that allows so many requests per window and answers 429
// beyond, with RateLimit headers. Each poll lists, and half of them fetch
// an object too (every other poll of a connection). Side by side: the same fleet with a per-process limiter
// at the API's rate on each replica (what x/time/rate gives today).
//
//	go run ./examples/loadtest/budgetload [-connections 200] [-replicas 3] [-rate 20] [-duration 2m]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/time/rate"

	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/budget"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/examples/loadtest/internal/pgtest"
	"github.com/intakehq/intake/fleet"
	"github.com/intakehq/intake/poller"
)

// Config is one run.
type Config struct {
	DSN         string
	Connections int
	Replicas    int
	Rate        int           // the API's requests per second, over windows of Window
	Window      time.Duration // the API's window
	Interval    time.Duration // each connection's
	Duration    time.Duration
	Warmup      time.Duration // left out of the figures
	Shared      bool          // a budget shared through Postgres; otherwise a limiter per replica
}

// Result is what a run measured, after the warm-up.
type Result struct {
	Mode        string  `json:"mode"`
	Requests    int64   `json:"requests"`
	OK          int64   `json:"ok"`
	Limited     int64   `json:"limited"`
	UsedShare   float64 `json:"used_share"`    // 2xx per second ÷ the API's rate
	LimitedRate float64 `json:"limited_share"` // 429s ÷ requests
	Spread      float64 `json:"spread"`        // the largest deviation of a connection's requests from the mean, relative
	Fetches     int64   `json:"fetches"`
}

// api is the fake API: Rate×Window requests per window of Window (fixed,
// aligned), 429 with Retry-After beyond, RateLimit headers always.
type api struct {
	limit  int
	window time.Duration
	from   time.Time // counting starts (after the warm-up)

	mu       sync.Mutex
	start    time.Time // the current window's
	used     int
	perConn  map[string]int64
	requests atomic.Int64
	ok       atomic.Int64
	limited  atomic.Int64
	fetches  atomic.Int64
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	counted := now.After(a.from)
	a.mu.Lock()
	if ws := now.Truncate(a.window); !ws.Equal(a.start) {
		a.start, a.used = ws, 0
	}
	reset := int(math.Ceil(a.start.Add(a.window).Sub(now).Seconds()))
	allowed := a.used < a.limit
	if allowed {
		a.used++
	}
	remaining := a.limit - a.used
	if counted {
		a.perConn[r.URL.Query().Get("conn")]++
	}
	a.mu.Unlock()
	if counted {
		a.requests.Add(1)
	}
	w.Header().Set("RateLimit", fmt.Sprintf("limit=%d, remaining=%d, reset=%d", a.limit, remaining, reset))
	if !allowed {
		if counted {
			a.limited.Add(1)
		}
		w.Header().Set("Retry-After", strconv.Itoa(reset))
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	if counted {
		a.ok.Add(1)
		if r.URL.Path == "/object" {
			a.fetches.Add(1)
		}
	}
	if r.URL.Path == "/list" {
		_ = json.NewEncoder(w).Encode(map[string]any{"items": []string{}})
	}
}

// limiterTransport waits for a per-process limiter: today's way.
type limiterTransport struct {
	l    *rate.Limiter
	base http.RoundTripper
}

func (t *limiterTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := t.l.Wait(r.Context()); err != nil {
		return nil, err
	}
	return t.base.RoundTrip(r)
}

// Run runs one configuration.
func Run(ctx context.Context, cfg Config) (Result, error) {
	res := Result{Mode: "a limiter per replica"}
	if cfg.Shared {
		res.Mode = "a budget shared in Postgres"
	}
	pool, err := pgxpool.New(ctx, cfg.DSN)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	prefix := fmt.Sprintf("bl%d_", time.Now().UnixNano()%1e12)
	pg, err := postgres.New(ctx, pool, postgres.WithPrefix(prefix))
	if err != nil {
		return res, err
	}
	defer pgtest.DropPrefix(pool, prefix)
	defer pg.Close()
	if _, err := pool.Exec(ctx, `INSERT INTO `+prefix+`connections (id, source, interval_us, next_due)
SELECT 'c' || lpad(g::text, 4, '0'), 'api', $2::bigint, now() + random() * $2::bigint * interval '1 microsecond' FROM generate_series(1, $1) g`,
		cfg.Connections, cfg.Interval.Microseconds()); err != nil {
		return res, err
	}
	a := &api{limit: cfg.Rate * int(cfg.Window/time.Second), window: cfg.Window, perConn: map[string]int64{}, from: time.Now().Add(cfg.Warmup)}
	srv := httptest.NewServer(a)
	defer srv.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for i := range cfg.Replicas {
		// Each replica: its own pool, backend, budget (or limiter), client
		// and fleet; they share the database, and the API's credential.
		rpool, err := pgxpool.New(ctx, cfg.DSN)
		if err != nil {
			return res, err
		}
		defer rpool.Close()
		rpg, err := postgres.New(ctx, rpool, postgres.WithPrefix(prefix))
		if err != nil {
			return res, err
		}
		defer rpg.Close()
		var tr http.RoundTripper = &http.Transport{MaxIdleConnsPerHost: 128}
		if cfg.Shared {
			b := budget.New(rpg.Budgets(), budget.Policy{Rate: cfg.Rate, Per: time.Second})
			tr = b.Transport(tr, budget.ByHeader("Authorization"))
		} else {
			tr = &limiterTransport{l: rate.NewLimiter(rate.Limit(cfg.Rate), 1), base: tr}
		}
		client := &http.Client{Transport: tr, Timeout: time.Minute}
		get := func(ctx context.Context, path, conn string) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+path+"?conn="+conn, nil)
			req.Header.Set("Authorization", "Bearer one-token-for-every-connection")
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode/100 != 2 {
				return &poller.StatusError{Code: resp.StatusCode}
			}
			return nil
		}
		f := fleet.New("accounts", rpg.Connections(), fleet.WithLogger(quiet), fleet.WithHolder(fmt.Sprintf("r%d", i)),
			fleet.WithBackoff(time.Second, 5*time.Second))
		f.Source("api", func(ctx context.Context, c fleet.Connection, cursor string) (poller.Page, error) {
			if err := get(ctx, "/list", c.ID); err != nil {
				return poller.Page{}, err
			}
			if c.Polls%2 == 1 { // every other poll, a fetch on demand with the same credential
				if err := get(ctx, "/object", c.ID); err != nil {
					return poller.Page{}, err
				}
			}
			return poller.Page{}, nil
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = f.Run(runCtx, event.SinkFunc(func(context.Context, event.Event) error { return nil }))
		}()
	}
	wg.Wait()
	secs := (cfg.Duration - cfg.Warmup).Seconds()
	res.Requests, res.OK, res.Limited, res.Fetches = a.requests.Load(), a.ok.Load(), a.limited.Load(), a.fetches.Load()
	res.UsedShare = float64(res.OK) / secs / float64(cfg.Rate)
	if res.Requests > 0 {
		res.LimitedRate = float64(res.Limited) / float64(res.Requests)
	}
	a.mu.Lock()
	var sum float64
	for i := range cfg.Connections {
		sum += float64(a.perConn[fmt.Sprintf("c%04d", i+1)])
	}
	mean := sum / float64(cfg.Connections)
	for i := range cfg.Connections {
		if mean > 0 {
			res.Spread = max(res.Spread, math.Abs(float64(a.perConn[fmt.Sprintf("c%04d", i+1)])-mean)/mean)
		}
	}
	a.mu.Unlock()
	return res, nil
}

func main() {
	var cfg Config
	flag.StringVar(&cfg.DSN, "postgres", pgtest.DSN(), "PostgreSQL")
	flag.IntVar(&cfg.Connections, "connections", 200, "connections sharing the credential")
	flag.IntVar(&cfg.Replicas, "replicas", 3, "replicas (each its own pool, budget and fleet)")
	flag.IntVar(&cfg.Rate, "rate", 20, "requests per second the API allows")
	flag.DurationVar(&cfg.Window, "window", 10*time.Second, "the API's window")
	flag.DurationVar(&cfg.Interval, "interval", 5*time.Second, "each connection's interval (demand above the rate)")
	flag.DurationVar(&cfg.Duration, "duration", 2*time.Minute, "each run")
	flag.DurationVar(&cfg.Warmup, "warmup", 10*time.Second, "left out of the figures")
	flag.Parse()
	fmt.Printf("budgetload: %d connections × %d replicas, one credential, an API allowing %d/s over %v windows, polls and fetches, %v (the first %v left out)\n\n",
		cfg.Connections, cfg.Replicas, cfg.Rate, cfg.Window, cfg.Duration, cfg.Warmup)
	fmt.Printf("  %-30s %9s %8s %8s %10s %9s %14s\n", "mode", "requests", "2xx", "429", "rate used", "429 share", "per-conn ±")
	for _, shared := range []bool{true, false} {
		c := cfg
		c.Shared = shared
		r, err := Run(context.Background(), c)
		if err != nil {
			fmt.Fprintln(os.Stderr, "budgetload:", err)
			os.Exit(1)
		}
		fmt.Printf("  %-30s %9d %8d %8d %9.1f%% %8.2f%% %13.1f%%\n", r.Mode, r.Requests, r.OK, r.Limited, 100*r.UsedShare, 100*r.LimitedRate, 100*r.Spread)
	}
}
