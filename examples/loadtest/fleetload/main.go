// Command fleetload measures a poller fleet on Postgres against today's
// one poller per connection: replicas as processes, a fake list API over
// loopback that records overlapping polls, cursors that move backwards
// and items served, and one replica SIGKILLed half way.
//
//	go run ./examples/loadtest/fleetload [-connections 100000] [-replicas 3] [-interval 5m] [-duration 6m] [-baseline 2000,20000]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/intakehq/intake/examples/loadtest/internal/pgtest"
)

func main() {
	if childMain() {
		return
	}
	var cfg Config
	flag.StringVar(&cfg.DSN, "postgres", pgtest.DSN(), "PostgreSQL")
	flag.IntVar(&cfg.Connections, "connections", 100_000, "connections of the fleet")
	flag.IntVar(&cfg.Replicas, "replicas", 3, "replicas (processes)")
	flag.DurationVar(&cfg.Interval, "interval", 5*time.Minute, "each connection's interval")
	flag.DurationVar(&cfg.Lease, "lease", 30*time.Second, "claim lease (and the baseline pollers' lease)")
	flag.DurationVar(&cfg.Duration, "duration", 6*time.Minute, "measured time of the fleet run (the kill is half way)")
	flag.Float64Var(&cfg.ItemRate, "items", 0.01, "new items per poll")
	small := flag.Int("small", 10_000, "also a fleet of this many connections, for the replicas' memory (0: none)")
	baseline := flag.String("baseline", "2000,20000", "today's one poller per connection at these counts (empty: none)")
	baseDur := flag.Duration("baseline-duration", 40*time.Second, "measured time of each baseline run")
	asJSON := flag.Bool("json", false, "print JSON")
	flag.Parse()
	dir, err := os.MkdirTemp("", "fleetload")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	cfg.Dir = dir
	ctx := context.Background()
	var results []Result
	if *small > 0 {
		c := cfg
		c.Connections, c.Duration = *small, min(cfg.Duration, time.Minute)
		r, err := Run(ctx, c)
		if err != nil {
			fail(err)
		}
		results = append(results, r)
	}
	c := cfg
	c.Kill = true
	r, err := Run(ctx, c)
	if err != nil {
		fail(err)
	}
	results = append(results, r)
	for _, s := range strings.Split(*baseline, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			fail(err)
		}
		c := cfg
		c.Pollers, c.Connections, c.Replicas, c.Duration = true, n, 2, *baseDur
		r, err := Run(ctx, c)
		if err != nil {
			fail(err)
		}
		results = append(results, r)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(results)
		return
	}
	fmt.Printf("fleetload: interval %v, lease %v, one Postgres, a fake API over loopback\n\n", cfg.Interval, cfg.Lease)
	fmt.Printf("  %-26s %11s %8s %10s %8s %7s %9s %18s %7s\n", "mode", "connections", "polls/s", "expected/s", "tx/s", "tx/poll", "share ±", "RSS per replica", "late")
	for _, r := range results {
		var rss []string
		for _, k := range r.RSSKiB {
			rss = append(rss, fmt.Sprintf("%.0fM", float64(k)/1024))
		}
		fmt.Printf("  %-26s %5d × %-3d %8.0f %10.0f %8.0f %7.2f %8.1f%% %18s %6.2f%%\n", r.Mode, r.Connections, r.Replicas,
			r.PollsPerSecond, r.Expected, r.TxPerSecond, r.TxPerPoll, 100*r.ShareSpread, strings.Join(rss, " "), 100*r.LateShare)
	}
	if *baseline != "" {
		fmt.Printf("\n  a poller per connection: measured from %v after the start, when every poller has polled once, all at once\n  (they are not spread), and waits out its interval: its tx/s is its leases' renewals, for no poll.\n",
			min(cfg.Interval/2, 20*time.Second))
	}
	for _, r := range results {
		if r.Mode == "fleet" && r.MaxGapAfterKill > 0 {
			fmt.Printf("\n  kill -9 of one of %d replicas (%d connections): longest gap between two polls of a connection after it %v (limit interval×1.1 + lease + 1 s = %v; %d over);\n  over the run %d overlapping polls, %d cursors moved backwards, %d of %d items served lost, %d handled twice\n",
				r.Replicas, r.Connections, r.MaxGapAfterKill.Round(time.Millisecond), (cfg.Interval*11/10 + cfg.Lease + time.Second), r.OverLimit,
				r.Overlaps, r.Backwards, r.Lost, r.Served, r.Twice)
		}
	}
	if len(results) > 1 && *small > 0 && results[0].Mode == "fleet" && results[1].Mode == "fleet" && len(results[0].RSSKiB) > 0 && len(results[1].RSSKiB) > 0 {
		per := float64(results[1].RSSKiB[0]-results[0].RSSKiB[0]) * 1024 / float64(results[1].Connections-results[0].Connections)
		fmt.Printf("\n  RSS per idle connection on a replica: (%d KiB − %d KiB) / %d connections = %.1f bytes\n",
			results[1].RSSKiB[0], results[0].RSSKiB[0], results[1].Connections-results[0].Connections, per)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fleetload:", err)
	os.Exit(1)
}
