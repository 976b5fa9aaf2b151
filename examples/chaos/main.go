// Command chaos runs intake's fault campaign: a real workload (webhooks
// sent as a provider sends them, retried until a 2xx; a polled API with
// a cursor) into intake replicas, separate processes on one backend,
// while a seeded schedule kills and pauses the replicas, breaks their
// links to the database (toxiproxy, in this process) and crashes the
// database itself; then a checker reads every process's history and
// reports lost, unexpected and duplicated events.
//
//	go run ./examples/chaos -backend postgres -seed 1 -duration 30m
//
// It exits 1 when the checker finds an anomaly, 2 on a bad command line.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"
)

func main() {
	if os.Getenv(envRole) == "replica" {
		if err := replica(); err != nil {
			fmt.Fprintln(os.Stderr, "chaos: replica:", err)
			os.Exit(1)
		}
		return
	}
	var cfg Config
	flag.StringVar(&cfg.Backend, "backend", "postgres", "postgres, redis, nats or sqlite")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "the seed of the schedule and the workload")
	flag.DurationVar(&cfg.Duration, "duration", time.Minute, "how long events are made and faults injected")
	flag.IntVar(&cfg.Rate, "rate", 200, "events made a second")
	flag.IntVar(&cfg.Replicas, "replicas", 3, "intake processes (sqlite: 1)")
	faultsPerMin := flag.Float64("faults", 4, "process and link faults a minute")
	flag.IntVar(&cfg.DBCrashes, "db-crashes", 3, "database crashes in the run (postgres, redis)")
	flag.BoolVar(&cfg.Plain, "plain", false, "plain acks on Postgres and SQLite too (the effect is the handler's record, duplicates must be explained)")
	flag.DurationVar(&cfg.Drain, "drain", 3*time.Minute, "how long delivery may take once the faults end")
	flag.StringVar(&cfg.Dir, "dir", "", "keep the run's histories and logs here")
	flag.Parse()
	if flag.NArg() > 0 || cfg.Rate <= 0 || cfg.Duration <= 0 || *faultsPerMin < 0 || cfg.Replicas <= 0 || cfg.DBCrashes < 0 {
		fmt.Fprintln(os.Stderr, "chaos: -rate, -duration and -replicas must be positive, -faults and -db-crashes not negative, no arguments")
		os.Exit(2)
	}
	switch cfg.Backend {
	case "postgres", "redis", "nats", "sqlite":
	default:
		fmt.Fprintf(os.Stderr, "chaos: -backend %q: postgres, redis, nats or sqlite\n", cfg.Backend)
		os.Exit(2)
	}
	cfg.Faults = int(*faultsPerMin * cfg.Duration.Minutes())
	cfg.Keep = cfg.Dir != ""
	cfg.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	began := time.Now()
	rep, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	fmt.Printf("backend %s, seed %d, %v of faults, %v in all\n", cfg.Backend, cfg.Seed, cfg.Duration, time.Since(began).Round(time.Second))
	rep.Print(os.Stdout)
	if rep.Anomalies() > 0 {
		os.Exit(1)
	}
}
