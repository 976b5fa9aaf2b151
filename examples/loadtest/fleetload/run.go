package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/examples/loadtest/internal/pgtest"
)

// Config is one run.
type Config struct {
	DSN         string
	Connections int
	Replicas    int
	Interval    time.Duration
	Lease       time.Duration
	Duration    time.Duration // measured, after the first interval's polls began
	Kill        bool          // SIGKILL one replica half way
	ItemRate    float64       // new items per poll
	Pollers     bool          // today's one poller per connection instead of a fleet
	Dir         string        // for the replicas' logs
}

// Result is what a run measured.
type Result struct {
	Mode           string           `json:"mode"`
	Connections    int              `json:"connections"`
	Replicas       int              `json:"replicas"`
	Polls          int64            `json:"polls"`
	PollsPerSecond float64          `json:"polls_per_second"`
	Expected       float64          `json:"expected_polls_per_second"`
	TxPerSecond    float64          `json:"tx_per_second"`
	TxPerPoll      float64          `json:"tx_per_poll"`
	RSSKiB         []int64          `json:"rss_kib"` // per replica
	Share          map[string]int64 `json:"polls_by_replica"`
	ShareSpread    float64          `json:"share_spread"` // largest deviation of a replica's share from 1/replicas, relative
	Late           int64            `json:"late"`         // polls started later than a tenth of the interval after due (surviving replicas)
	LateShare      float64          `json:"late_share"`
	// The crash: the longest gap between two polls of a connection after
	// the kill, and how many connections exceeded interval×1.1 + lease + 1 s.
	MaxGapAfterKill time.Duration `json:"max_gap_after_kill"`
	OverLimit       int           `json:"connections_over_limit"`
	Overlaps        int64         `json:"overlapping_polls"`
	Backwards       int64         `json:"cursors_backwards"`
	Served          int           `json:"items_served"`
	Lost            int           `json:"items_lost"`
	Twice           int           `json:"items_handled_twice"`
}

type replica struct {
	name  string
	cmd   *exec.Cmd
	stop  func()
	stats string
	log   string
}

func start(cfg Config, prefix, apiURL, name string) (*replica, error) {
	mode := "fleet"
	if cfg.Pollers {
		mode = "pollers"
	}
	r := &replica{name: name, log: filepath.Join(cfg.Dir, name+".log")}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envMode+"="+mode, envDSN+"="+cfg.DSN, envPrefix+"="+prefix, envAPI+"="+apiURL,
		envName+"="+name, envLog+"="+r.log, envLease+"="+cfg.Lease.String(), envInterval+"="+cfg.Interval.String(),
		fmt.Sprintf("%s=%d", envPollers, cfg.Connections))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r.cmd = cmd
	r.stop = func() { _ = in.Close(); _ = cmd.Wait() }
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case l := <-line:
		if !strings.HasPrefix(l, "http://") {
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("replica %s said %q", name, l)
		}
		r.stats = l
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("replica %s did not start in 2 minutes", name)
	}
	return r, nil
}

func (r *replica) read() (ChildStats, error) {
	var st ChildStats
	resp, err := http.Get(r.stats)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// xacts returns the server's count of write transactions so far.
func xacts(pool *pgxpool.Pool) int64 {
	var n int64
	_ = pool.QueryRow(context.Background(), `SELECT pg_current_xact_id()::text::bigint`).Scan(&n)
	return n
}

// Run runs one configuration and returns what it measured.
func Run(ctx context.Context, cfg Config) (Result, error) {
	res := Result{Mode: "fleet", Connections: cfg.Connections, Replicas: cfg.Replicas,
		Expected: float64(cfg.Connections) / cfg.Interval.Seconds()}
	if cfg.Pollers {
		res.Mode = "a poller per connection"
	}
	pool, err := pgxpool.New(ctx, cfg.DSN)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	prefix := fmt.Sprintf("fl%d_", time.Now().UnixNano()%1e12)
	defer pgtest.DropPrefix(pool, prefix)
	pg, err := postgres.New(ctx, pool, postgres.WithPrefix(prefix))
	if err != nil {
		return res, err
	}
	_ = pg.Close()
	if !cfg.Pollers {
		// The connections, due spread over their first interval (as
		// fleet.Add spreads them), in one statement.
		if _, err := pool.Exec(ctx, `INSERT INTO `+prefix+`connections (id, source, interval_us, next_due)
SELECT 'c' || lpad(g::text, 6, '0'), 'api', $2::bigint, now() + random() * $2::bigint * interval '1 microsecond' FROM generate_series(1, $1) g`,
			cfg.Connections, cfg.Interval.Microseconds()); err != nil {
			return res, err
		}
	}
	a := newAPI(cfg.ItemRate)
	srv := httptest.NewServer(a)
	defer srv.Close()
	var reps []*replica
	defer func() {
		for _, r := range reps {
			r.stop()
		}
	}()
	for i := range cfg.Replicas {
		r, err := start(cfg, prefix, srv.URL, fmt.Sprintf("r%d", i))
		if err != nil {
			return res, err
		}
		reps = append(reps, r)
	}
	if cfg.Pollers {
		// Every poller polls once at start; measure after that burst.
		time.Sleep(min(cfg.Interval/2, 20*time.Second))
	}

	t0, x0, p0, s0 := time.Now(), xacts(pool), a.polls.Load(), a.replicas()
	end := t0.Add(cfg.Duration)
	killAt := t0.Add(cfg.Duration / 2)
	var killed *replica
	var t1 time.Time
	var x1, p1 int64
	var s1 map[string]int64
	for time.Now().Before(end) {
		time.Sleep(200 * time.Millisecond)
		if cfg.Kill && killed == nil && time.Now().After(killAt) {
			t1, x1, p1, s1 = time.Now(), xacts(pool), a.polls.Load(), a.replicas()
			killed = reps[0]
			_ = killed.cmd.Process.Kill()
			_ = killed.cmd.Wait()
			a.mark()
		}
	}
	if killed == nil {
		t1, x1, p1, s1 = time.Now(), xacts(pool), a.polls.Load(), a.replicas()
	}
	// Rates and shares before the kill (all replicas up).
	secs := t1.Sub(t0).Seconds()
	res.Polls = p1 - p0
	res.PollsPerSecond = float64(res.Polls) / secs
	res.TxPerSecond = float64(x1-x0) / secs
	if res.Polls > 0 {
		res.TxPerPoll = float64(x1-x0) / float64(res.Polls)
	}
	res.Share = map[string]int64{}
	for k, v := range s1 {
		res.Share[k] = v - s0[k]
	}
	for _, r := range reps {
		if res.Polls > 0 {
			dev := float64(res.Share[r.name])/float64(res.Polls)*float64(cfg.Replicas) - 1
			res.ShareSpread = max(res.ShareSpread, abs(dev))
		}
	}
	var polled int64
	for _, r := range reps {
		if r == killed {
			continue
		}
		st, err := r.read()
		if err != nil {
			return res, fmt.Errorf("stats of %s: %w", r.name, err)
		}
		res.RSSKiB = append(res.RSSKiB, st.RSSKiB)
		res.Late += st.Late
		polled += st.Polls
	}
	if polled > 0 {
		res.LateShare = float64(res.Late) / float64(polled)
	}
	if killed != nil {
		res.MaxGapAfterKill, res.OverLimit = a.gaps(cfg.Interval*11/10+cfg.Lease+time.Second, t1)
	}
	if cfg.Pollers {
		return res, nil
	}

	// No new items; every item served must be handled.
	a.frozen.Store(true)
	served := a.servedItems()
	res.Served = len(served)
	settle := time.Now().Add(cfg.Interval + cfg.Lease + time.Minute)
	for {
		handled, err := readLogs(reps)
		if err != nil {
			return res, err
		}
		res.Lost, res.Twice = 0, 0
		for it := range served {
			if handled[it] == 0 {
				res.Lost++
			}
		}
		for _, n := range handled {
			if n > 1 {
				res.Twice++
			}
		}
		if res.Lost == 0 || time.Now().After(settle) {
			break
		}
		time.Sleep(time.Second)
	}
	a.mu.Lock()
	res.Overlaps, res.Backwards = a.overlap, a.back
	a.mu.Unlock()
	return res, nil
}

func readLogs(reps []*replica) (map[string]int, error) {
	handled := map[string]int{}
	for _, r := range reps {
		b, err := os.ReadFile(r.log)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line != "" {
				handled[line]++
			}
		}
	}
	return handled, nil
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
