package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/event"
)

// RestartResult is one line of the restart drain: a backlog queued by a
// stream that stopped, adopted and drained by a new one (or River's
// workers), with what it cost PostgreSQL. The rate counts the events
// handled; Lost counts those not handled within the ten minutes a drain
// is given.
type RestartResult struct {
	Target          string  `json:"target"`
	Events          int     `json:"events"`
	QueueSize       int     `json:"queue_size,omitempty"`
	DrainPerSecond  float64 `json:"drain_per_second"`
	CommitsPerEvent float64 `json:"drain_commits_per_event"`
	PGMicrosPerEv   float64 `json:"postgres_cpu_us_per_event"`
	Twice           int     `json:"handled_twice"`
	Lost            int     `json:"lost"`
}

// restartLoad runs the restart drain for each backlog size (and, for
// intake, each queue size), intake and River interleaved in every round;
// each line is the median round by drain rate.
func restartLoad(srv *servers, sizes, queues []int, rounds int, withRiver bool) ([]RestartResult, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var targets []func() (RestartResult, error)
	for _, n := range sizes {
		for _, q := range queues {
			targets = append(targets, func() (RestartResult, error) { return intakeRestart(srv, n, q, quiet) })
		}
		if withRiver {
			targets = append(targets, func() (RestartResult, error) { return riverRestart(srv, n, quiet) })
		}
	}
	return medianRounds(targets, rounds, func(r RestartResult) float64 { return r.DrainPerSecond }, func(m *RestartResult, r RestartResult) {
		m.Twice, m.Lost = max(m.Twice, r.Twice), max(m.Lost, r.Lost)
	})
}

// restartPayload is a 1 KiB JSON body, as a webhook's.
func restartPayload(id string) []byte {
	b := []byte(`{"id":"` + id + `","pad":"`)
	b = append(b, bytes.Repeat([]byte("x"), max(1024-len(b)-2, 0))...)
	return append(b, `"}`...)
}

// intakeRestart: a stream on Postgres stores n events through Put from 32
// goroutines (no subscriber reads them), stops (its claims given back, as
// a restart does), and a new stream with default options but the queue
// size (10,000 is the default) adopts and drains them with 100 workers.
func intakeRestart(srv *servers, n, queueSize int, quiet *slog.Logger) (RestartResult, error) {
	ctx := context.Background()
	prefix, drop := pgPrefix(srv.pg)
	defer drop()
	loader, err := postgres.Open(ctx, srv.dsn, postgres.WithPrefix(prefix))
	if err != nil {
		return RestartResult{}, err
	}
	s1 := intake.New(intake.WithLogger(quiet), intake.WithQueue(loader), intake.WithQueueSize(n+1), intake.WithDrainTimeout(time.Millisecond))
	s1.Subscribe() // never read: the events wait in the queue
	lctx, stopLoad := context.WithCancel(ctx)
	loaded := make(chan error, 1)
	go func() { loaded <- s1.Run(lctx) }()
	ids := backlogIDs(n)
	work := make(chan string)
	var wg sync.WaitGroup
	var putErr error
	var once sync.Once
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				e := event.Event{Source: "restart", ID: id, Type: "t", Payload: restartPayload(id)}
				for {
					err := s1.Put(ctx, e)
					if err == nil {
						break
					}
					if _, retry := event.RetryDelay(err); !retry {
						once.Do(func() { putErr = err })
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	stopLoad()
	<-loaded
	loader.Close()
	if putErr != nil {
		return RestartResult{}, putErr
	}

	b, err := postgres.Open(ctx, srv.dsn, postgres.WithPrefix(prefix))
	if err != nil {
		return RestartResult{}, err
	}
	defer b.Close()
	c := newCounter()
	opts := []intake.Option{intake.WithLogger(quiet), intake.WithQueue(b)}
	if queueSize > 0 {
		opts = append(opts, intake.WithQueueSize(queueSize))
	}
	s := intake.New(opts...)
	s.Handle(func(ctx context.Context, e event.Event) error {
		c.add(e.ID)
		return nil
	}, intake.WithWorkers(100))
	before, cpu := writeTransactions(srv.pg), postgresCPU()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Run(rctx) }()
	twice, lost, last := c.settle(setOf(ids), 10*time.Minute)
	drained := last.Sub(start)
	used := postgresCPU() - cpu
	commits := writeTransactions(srv.pg) - before - 1
	cancel()
	<-done
	return RestartResult{Target: "intake, Postgres: Put, stop, a new stream drains", Events: n, QueueSize: queueSize,
		DrainPerSecond: float64(n-lost) / drained.Seconds(), CommitsPerEvent: float64(commits) / float64(n),
		PGMicrosPerEv: float64(used.Microseconds()) / float64(n), Twice: twice, Lost: lost}, nil
}

// riverRestart: River's jobs for the same n events, inserted with
// InsertMany (1 KiB bodies, 1,000 a call), then drained by a client's
// 100 workers.
func riverRestart(srv *servers, n int, quiet *slog.Logger) (RestartResult, error) {
	ctx := context.Background()
	c := newCounter()
	client, drop, err := riverClient(ctx, srv.pg, c, quiet, false)
	if err != nil {
		return RestartResult{}, err
	}
	defer drop()
	ids := backlogIDs(n)
	for i := 0; i < n; i += 1000 {
		page := ids[i:min(i+1000, n)]
		params := make([]river.InsertManyParams, len(page))
		for j, id := range page {
			params[j] = river.InsertManyParams{Args: WebhookArgs{Delivery: id, Event: "t", Body: restartPayload(id)},
				InsertOpts: &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}}
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return RestartResult{}, fmt.Errorf("river InsertMany: %w", err)
		}
	}
	before, cpu := writeTransactions(srv.pg), postgresCPU()
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return RestartResult{}, err
	}
	twice, lost, last := c.settle(setOf(ids), 10*time.Minute)
	drained := last.Sub(start)
	used := postgresCPU() - cpu
	commits := writeTransactions(srv.pg) - before - 1
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = client.Stop(sctx)
	cancel()
	return RestartResult{Target: "River: InsertMany, 100 workers drain", Events: n,
		DrainPerSecond: float64(n-lost) / drained.Seconds(), CommitsPerEvent: float64(commits) / float64(n),
		PGMicrosPerEv: float64(used.Microseconds()) / float64(n), Twice: twice, Lost: lost}, nil
}

// postgresCPU returns the CPU time (user and system) the processes named
// postgres on this machine have used: a local server's, its backends
// included, read from /proc. 0 where /proc cannot tell.
func postgresCPU() time.Duration {
	const tick = 100 // USER_HZ, the unit of /proc/<pid>/stat's times on Linux
	var total int64
	dirs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range dirs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		open, closing := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || closing < open || string(b[open+1:closing]) != "postgres" {
			continue
		}
		fields := strings.Fields(string(b[closing+1:]))
		if len(fields) < 13 {
			continue
		}
		// After the name: state is fields[0]; utime and stime are the
		// 14th and 15th fields of the line, fields[11] and fields[12].
		u, _ := strconv.ParseInt(fields[11], 10, 64)
		s, _ := strconv.ParseInt(fields[12], 10, 64)
		total += u + s
	}
	return time.Duration(total) * time.Second / tick
}

func printRestarts(rs []RestartResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Printf("\n  %-52s %9s %7s %10s %11s %12s %10s\n", "a restart with a backlog on PostgreSQL", "events", "queue", "drain/s", "commits/ev", "pg CPU µs/ev", "twice/lost")
	for _, r := range rs {
		q := ""
		if r.QueueSize > 0 {
			q = strconv.Itoa(r.QueueSize)
		}
		fmt.Printf("  %-52s %9d %7s %10.0f %11.3f %12.1f %10s\n", r.Target, r.Events, q, r.DrainPerSecond, r.CommitsPerEvent, r.PGMicrosPerEv, fmt.Sprintf("%d/%d", r.Twice, r.Lost))
	}
	for _, r := range rs {
		if !strings.HasPrefix(r.Target, "River") {
			continue
		}
		for _, o := range rs {
			if o.Events == r.Events && o.Target != r.Target && r.DrainPerSecond > 0 {
				fmt.Printf("  %d events, queue %d: intake drains %.2f× River\n", o.Events, o.QueueSize, o.DrainPerSecond/r.DrainPerSecond)
			}
		}
	}
}
