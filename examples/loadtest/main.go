// Command loadtest measures intake's webhook handler under load on
// 127.0.0.1, side by side with a bare net/http handler (the ceiling) and a
// naive receiver that verifies and processes each request inline:
//
//	go run ./examples/loadtest [-n 20000] [-duration 5s] [-c 32] [-dup 0.3] [-work 100ms] [-json]
//
// Every target gets the same load: signed 1 KiB webhooks over keep-alive
// connections from -c clients, -dup of them repeating an earlier delivery,
// until -n requests or -duration, whichever comes first, in -rounds rounds
// that interleave the targets. Then a backlog of
// 5×-n events is drained from a fake list API, by a bare loop of GETs and
// by intake's poller into a stream.
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

const secret = "It's a Secret to Everybody"

type config struct {
	n        int
	duration time.Duration
	clients  int
	dup      float64
	work     time.Duration
	size     int
	rounds   int
	servers  *servers       // nil: no durable targets
	js       *jetstreams    // nil: no JetStream targets
	only     *regexp.Regexp // nil, or run only the targets whose name it matches (and the bare one)
}

// Result is one target's line.
type Result struct {
	Target    string  `json:"target"`
	Requests  int     `json:"requests"`
	PerSecond float64 `json:"requests_per_second"`
	Ratio     float64 `json:"ratio_to_bare"`
	P50us     int64   `json:"p50_us"`
	P99us     int64   `json:"p99_us"`
	P999us    int64   `json:"p999_us"`
	Non2xx    int64   `json:"non_2xx"`
	Status5xx int64   `json:"status_5xx"`

	// For the targets whose consumer is counted: the unique deliveries
	// acknowledged, how fast they were handled (from the load's start to
	// the last one handled), and, in this round and in every round, how
	// many were handled twice or never.
	Counted            bool    `json:"counted"`
	Unique             int     `json:"unique_acknowledged,omitempty"`
	ProcessedPerSecond float64 `json:"processed_per_second,omitempty"`
	Twice              int     `json:"handled_twice"`
	Lost               int     `json:"lost"`
	TwiceAll           int     `json:"handled_twice_all_rounds"`
	LostAll            int     `json:"lost_all_rounds"`
	// Postgres targets: transactions committed per unique event.
	CommitsPerEvent float64 `json:"commits_per_event,omitempty"`
}

func main() {
	var cfg config
	flag.IntVar(&cfg.n, "n", 20000, "requests per target, at most")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "time per target, at most")
	flag.IntVar(&cfg.clients, "c", 32, "concurrent keep-alive clients")
	flag.Float64Var(&cfg.dup, "dup", 0.3, "share of requests repeating an earlier delivery")
	flag.DurationVar(&cfg.work, "work", 100*time.Millisecond, "processing time per event of the slow subscriber and of the naive receiver")
	flag.IntVar(&cfg.size, "size", 1024, "body size in bytes")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds over all targets; each line is the target's median round")
	asJSON := flag.Bool("json", false, "print JSON")
	pgDSN := flag.String("postgres", envOr("INTAKE_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"), "PostgreSQL for the Postgres and River targets; empty: none")
	jetStream := flag.Bool("jetstream", true, "run the JetStream targets on nats-servers of the load test's own (one node, and a three-node cluster; each with sync_interval always and with the server's default)")
	redisAddr := flag.String("redis", envOr("INTAKE_REDIS_ADDR", "127.0.0.1:6379"), "Redis for the Redis target; empty: none")
	flag.Func("only", "run only the targets whose name matches this regular expression (the bare one always runs), e.g. 'Postgres queue$'", func(v string) error {
		re, err := regexp.Compile(v)
		cfg.only = re
		return err
	})
	backlog := flag.Int("backlog", 0, "also drain a backlog of this many events on Postgres, intake against River (0: none)")
	restart := flag.String("restart", "", "also a restart with a backlog on Postgres, intake against River: backlog sizes, comma-separated (e.g. 100000,1000000)")
	restartQueues := flag.String("restart-queue", "10000", "the queue sizes of the stream that drains after the restart, comma-separated (10000 is the default)")
	restartRiver := flag.Bool("restart-river", true, "with -restart, River's drain too")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	cfg.servers = connect(context.Background(), *pgDSN, *redisAddr)
	defer cfg.servers.close()
	sizes, err := ints(*restart)
	var queues []int
	if err == nil {
		queues, err = ints(*restartQueues)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	if *jetStream && (cfg.only == nil || cfg.only.MatchString(jetStreamTargetName(1, "always")) || cfg.only.MatchString(jetStreamTargetName(3, "2m"))) {
		js, err := startJetStreams()
		if err != nil {
			cfg.servers.notes = append(cfg.servers.notes, "JetStream targets left out: "+err.Error())
		} else {
			cfg.js = js
			defer js.close()
		}
	}
	for _, n := range cfg.servers.notes {
		fmt.Fprintln(os.Stderr, "loadtest:", n)
	}

	results, err := run(cfg)
	var backlogs []BacklogResult
	if err == nil && *backlog > 0 && cfg.servers.pg != nil {
		backlogs, err = backlogLoad(cfg.servers, *backlog, cfg.rounds)
	}
	var restarts []RestartResult
	if err == nil && len(sizes) > 0 && cfg.servers.pg != nil {
		restarts, err = restartLoad(cfg.servers, sizes, queues, cfg.rounds, *restartRiver)
	}
	if err == nil {
		var polls []PollResult
		polls, err = pollLoad(cfg.n * 5)
		if err == nil && *asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(map[string]any{"webhooks": results, "backlog": backlogs, "restart": restarts, "polling": polls})
			return
		}
		defer printPolls(polls)
		defer printRestarts(restarts)
		defer printBacklogs(backlogs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		if cfg.js != nil {
			cfg.js.close() // os.Exit runs no deferred calls: no nats-server left behind
		}
		os.Exit(1)
	}
	fmt.Printf("intake loadtest: %d-byte signed webhooks, %d keep-alive clients, %.0f%% duplicates, up to %d requests or %s per target and round,\n%d rounds (median shown), on 127.0.0.1\n\n",
		cfg.size, cfg.clients, 100*cfg.dup, cfg.n, cfg.duration, cfg.rounds)
	fmt.Printf("  %-52s %9s %9s %6s %8s %8s %8s %8s %11s %9s %8s\n", "target", "requests", "req/s", "×bare", "p50", "p99", "p999", "non-2xx", "handled/s", "commits/ev", "twice/lost")
	for _, r := range results {
		handled, commits, once := "", "", ""
		if r.Counted {
			handled = fmt.Sprintf("%.0f", r.ProcessedPerSecond)
			once = fmt.Sprintf("%d/%d", r.TwiceAll, r.LostAll)
		}
		if r.CommitsPerEvent > 0 {
			commits = fmt.Sprintf("%.2f", r.CommitsPerEvent)
		}
		fmt.Printf("  %-52s %9d %9.0f %6.2f %8s %8s %8s %8d %11s %9s %8s\n", r.Target, r.Requests, r.PerSecond, r.Ratio,
			us(r.P50us), us(r.P99us), us(r.P999us), r.Non2xx, handled, commits, once)
	}
	var plainInsert *Result
	for i, r := range results {
		if strings.HasSuffix(r.Target, "handler INSERT, then Ack") {
			plainInsert = &results[i]
		}
	}
	if plainInsert != nil && plainInsert.ProcessedPerSecond > 0 {
		fmt.Printf("\n  exactly-once effects (median rounds), against INSERT then Ack (%.0f handled/s): ", plainInsert.ProcessedPerSecond)
		for _, r := range results {
			if strings.Contains(r.Target, "handler INSERT + ") {
				fmt.Printf("%s %.2f× handled/s, %.2f× req/s; ", strings.TrimPrefix(r.Target, "intake, Postgres queue, handler "),
					r.ProcessedPerSecond/plainInsert.ProcessedPerSecond, r.PerSecond/plainInsert.PerSecond)
			}
		}
		fmt.Println()
	}
	var sqlitePlain *Result
	for i, r := range results {
		if r.Target == "intake, SQLite queue, handler with no effect" {
			sqlitePlain = &results[i]
		}
	}
	if sqlitePlain != nil && sqlitePlain.ProcessedPerSecond > 0 {
		fmt.Printf("\n  SQLite, exactly-once effects against the same handler with no effect (median rounds): ")
		for _, r := range results {
			if strings.HasPrefix(r.Target, "intake, SQLite queue, handler INSERT") {
				fmt.Printf("%s %.2f× handled/s, %.2f× req/s; ", strings.TrimPrefix(r.Target, "intake, SQLite queue, handler "),
					r.ProcessedPerSecond/sqlitePlain.ProcessedPerSecond, r.PerSecond/sqlitePlain.PerSecond)
			}
		}
		fmt.Println()
	}
	for _, r := range results {
		if strings.HasPrefix(r.Target, "River") {
			fmt.Printf("\n  against %q (median rounds): ", r.Target)
			for _, o := range results {
				if strings.Contains(o.Target, "Postgres") {
					fmt.Printf("%s %.2f× req/s, %.2f× handled/s; ", o.Target, o.PerSecond/r.PerSecond, o.ProcessedPerSecond/r.ProcessedPerSecond)
				}
			}
			fmt.Println()
		}
	}
}

// ints reads a comma-separated list of positive integers; "" is none.
func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q: want positive integers, comma-separated", s)
		}
		out = append(out, n)
	}
	return out, nil
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func printPolls(polls []PollResult) {
	fmt.Printf("\n  %-50s %9s %9s %12s %6s\n", "polling a backlog (pages of 100)", "events", "requests", "events/s", "×bare")
	for _, p := range polls {
		fmt.Printf("  %-50s %9d %9d %12.0f %6.2f\n", p.Target, p.Events, p.Requests, p.PerSecond, p.Ratio)
	}
}

func us(v int64) string {
	d := time.Duration(v) * time.Microsecond
	if d >= time.Millisecond {
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", v)
}

// target is one receiver under load: setup starts it and returns its
// handler, the counter its consumer counts into (nil: not counted), and
// how to stop it.
type target struct {
	name  string
	setup func() (http.Handler, *counter, func(), error)
}

func run(cfg config) ([]Result, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir, err := os.MkdirTemp("", "intake-loadtest-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	intakeTarget := func(opts []intake.Option, work time.Duration) func() (http.Handler, *counter, func(), error) {
		return func() (http.Handler, *counter, func(), error) {
			s := intake.New(append([]intake.Option{intake.WithLogger(quiet), intake.WithQueueSize(1 << 20),
				intake.WithDrainTimeout(time.Millisecond)}, opts...)...)
			h := webhook.New("github", webhook.GitHub(secret), webhook.WithLogger(quiet))
			s.Add(h)
			var c *counter
			if work == 0 {
				c = newCounter()
			}
			s.Handle(func(ctx context.Context, e event.Event) error {
				if work > 0 {
					select {
					case <-time.After(work):
					case <-ctx.Done():
					}
					return nil
				}
				c.add(e.ID)
				return nil
			}, intake.WithWorkers(8))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			return h, c, func() { cancel(); <-done }, nil
		}
	}
	targets := []target{
		{"bare net/http: read body, 200 (the ceiling)", func() (http.Handler, *counter, func(), error) {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusOK)
			}), nil, func() {}, nil
		}},
		{"intake, memory stream", intakeTarget(nil, 0)},
		{fmt.Sprintf("intake, memory stream, %s subscriber", cfg.work), intakeTarget(nil, cfg.work)},
		{"intake, SQLite queue (synchronous=FULL)", func() (http.Handler, *counter, func(), error) {
			q, err := sqlite.Open(filepath.Join(dir, fmt.Sprintf("loadtest-%d.db", time.Now().UnixNano())))
			if err != nil {
				return nil, nil, nil, err
			}
			h, c, stop, _ := intakeTarget([]intake.Option{intake.WithQueue(q)}, 0)()
			return h, c, func() { stop(); q.Close() }, nil
		}},
		// Exactly-once effects on SQLite: the same stream and handler with no
		// effect, and with one row per event written in the transaction of
		// the acks of a batch (HandleTxBatch).
		{"intake, SQLite queue, handler with no effect", sqliteEffects(dir, quiet, "")},
		{"intake, SQLite queue, handler INSERT + AckTx, one tx", sqliteEffects(dir, quiet, "tx")},
		{"intake, SQLite queue, handler INSERT + AckTx, tx per batch of 16", sqliteEffects(dir, quiet, "txbatch")},
		{fmt.Sprintf("naive: verify, then %s of work inline", cfg.work), func() (http.Handler, *counter, func(), error) {
			return naive(cfg.work), nil, func() {}, nil
		}},
	}
	if cfg.servers != nil {
		targets = append(targets, durableTargets(cfg.servers, quiet)...)
	}
	if cfg.js != nil {
		targets = append(targets, jetStreamTargets(cfg.js, quiet)...)
	}
	targets = pick(targets, cfg.only)
	// Rounds interleave the targets so that a slow spell of the machine
	// does not fall on one target only; each target's line is its median
	// round by throughput.
	rounds := make([][]Result, len(targets))
	for round := range max(cfg.rounds, 1) {
		for i, t := range targets {
			h, c, stop, err := t.setup()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t.name, err)
			}
			var before int64
			if cfg.servers != nil && cfg.servers.pg != nil {
				before = writeTransactions(cfg.servers.pg)
			}
			r, acked, start, err := load(cfg, h)
			if err == nil && c != nil {
				// Exactly once: every delivery acknowledged is handled, once.
				var last time.Time
				r.Twice, r.Lost, last = c.settle(acked, time.Minute)
				r.Counted = true
				if len(acked) > 0 {
					r.Unique = len(acked)
					r.ProcessedPerSecond = float64(len(acked)) / last.Sub(start).Seconds()
				}
				if before > 0 && (strings.Contains(t.name, "Postgres") || strings.Contains(t.name, "River")) {
					r.CommitsPerEvent = float64(writeTransactions(cfg.servers.pg)-before-1) / float64(max(len(acked), 1))
				}
			}
			stop()
			if err != nil {
				return nil, fmt.Errorf("%s, round %d: %w", t.name, round+1, err)
			}
			r.Target = t.name
			rounds[i] = append(rounds[i], r)
		}
	}
	var results []Result
	for _, rs := range rounds {
		slices.SortFunc(rs, func(a, b Result) int { return cmp.Compare(a.PerSecond, b.PerSecond) })
		results = append(results, rs[len(rs)/2])
		// Exactly once in every round, not only the median one.
		for _, r := range rs {
			results[len(results)-1].TwiceAll += r.Twice
			results[len(results)-1].LostAll += r.Lost
		}
	}
	for i := range results {
		results[i].Ratio = results[i].PerSecond / results[0].PerSecond
	}
	return results, nil
}

// verified reads the body and checks its GitHub signature the way a
// receiver without a library does; it answers the request itself and
// returns false when either fails.
func verified(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return nil, false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(r.Header.Get("X-Hub-Signature-256"))) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return nil, false
	}
	return body, true
}

// naive is what a receiver without a library often is: read, verify,
// process, then answer.
func naive(work time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := verified(w, r); !ok {
			return
		}
		time.Sleep(work) // process before answering
		w.WriteHeader(http.StatusOK)
	})
}

// load serves h on 127.0.0.1 and sends it the configured load. It returns
// the deliveries answered 2xx (the target said they are stored) and when
// the load started.
func load(cfg config, h http.Handler) (Result, map[string]bool, time.Time, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{}, nil, time.Time{}, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/"
	tr := &http.Transport{MaxIdleConnsPerHost: cfg.clients, MaxConnsPerHost: cfg.clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	// Each delivery's body is its own, as a provider's are (the id inside
	// it), padded to the configured size.
	pad := strings.Repeat("x", max(0, cfg.size-30))
	bodyOf := func(id string) []byte { return []byte(`{"delivery":"` + id + `","zen":"` + pad + `"}`) }
	body := bodyOf("warmup")
	// Wait until the target answers as running (a 503 before).
	for i := 0; ; i++ {
		hdr := signed("warmup", body)
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header = hdr
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				break
			}
		}
		if i > 500 {
			return Result{}, nil, time.Time{}, fmt.Errorf("target never became ready")
		}
		time.Sleep(5 * time.Millisecond)
	}

	var next, non2xx, fivexx atomic.Int64
	lat := make([][]time.Duration, cfg.clients)
	ackedBy := make([][]string, cfg.clients)
	deadline := time.Now().Add(cfg.duration)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range cfg.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for time.Now().Before(deadline) {
				i := next.Add(1)
				if i > int64(cfg.n) {
					return
				}
				id := i
				if i > 100 && rng.Float64() < cfg.dup {
					id = 1 + rng.Int64N(i-1) // a delivery sent before
				}
				delivery := fmt.Sprint("d-", id)
				body := bodyOf(delivery)
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header = signed(delivery, body)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					non2xx.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[c] = append(lat[c], time.Since(t0))
				if resp.StatusCode/100 == 2 {
					ackedBy[c] = append(ackedBy[c], delivery)
				}
				// 409: the same delivery is being processed, a duplicate.
				if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusConflict {
					non2xx.Add(1)
					if resp.StatusCode >= 500 {
						fivexx.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return Result{}, nil, start, fmt.Errorf("no request completed")
	}
	acked := map[string]bool{}
	for _, ds := range ackedBy {
		for _, d := range ds {
			acked[d] = true
		}
	}
	q := func(f float64) int64 { return all[min(len(all)-1, int(f*float64(len(all))))].Microseconds() }
	return Result{Requests: len(all), PerSecond: float64(len(all)) / elapsed.Seconds(),
		P50us: q(0.5), P99us: q(0.99), P999us: q(0.999), Non2xx: non2xx.Load(), Status5xx: fivexx.Load()}, acked, start, nil
}

func signed(id string, body []byte) http.Header {
	return webhook.SignGitHub(secret, id, "push", body)
}

// pick keeps the targets whose name only matches, and the bare handler:
// the ratios are to it. A nil only keeps every target.
func pick(targets []target, only *regexp.Regexp) []target {
	if only == nil {
		return targets
	}
	return slices.DeleteFunc(targets, func(t target) bool {
		return !strings.HasPrefix(t.name, "bare") && !only.MatchString(t.name)
	})
}
