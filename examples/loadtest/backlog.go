package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/riverqueue/river"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/event"
)

// BacklogResult is one backlog target's line: pre-loading n events, then
// draining them with an acking consumer.
type BacklogResult struct {
	Target          string  `json:"target"`
	Events          int     `json:"events"`
	LoadPerSecond   float64 `json:"preload_per_second"`
	DrainPerSecond  float64 `json:"drain_per_second"`
	CommitsPerEvent float64 `json:"drain_commits_per_event"`
	Twice           int     `json:"handled_twice"`
	Lost            int     `json:"lost"`
}

// backlogLoad pre-loads n events into intake's Postgres queue (PutMany's
// path: EnqueueMany a page of 1,000 at a time) and into River (InsertMany,
// 1,000 at a time), then drains each with an acking consumer, in
// interleaved rounds; each line is the median round by drain rate.
func backlogLoad(srv *servers, n, rounds int) ([]BacklogResult, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	return medianRounds([]func() (BacklogResult, error){
		func() (BacklogResult, error) { return intakeBacklog(srv, n, quiet) },
		func() (BacklogResult, error) { return riverBacklog(srv, n, quiet) },
	}, rounds, func(r BacklogResult) float64 { return r.DrainPerSecond }, func(m *BacklogResult, r BacklogResult) {
		m.Twice, m.Lost = max(m.Twice, r.Twice), max(m.Lost, r.Lost)
	})
}

// medianRounds runs the targets in interleaved rounds and returns each
// one's median round by rate, with worst folding every round's
// exactly-once counts into it (the worst of them).
func medianRounds[T any](targets []func() (T, error), rounds int, rate func(T) float64, worst func(m *T, r T)) ([]T, error) {
	all := make([][]T, len(targets))
	for range max(rounds, 1) {
		for i, t := range targets {
			r, err := t()
			if err != nil {
				return nil, err
			}
			all[i] = append(all[i], r)
		}
	}
	var out []T
	for _, rs := range all {
		slices.SortFunc(rs, func(a, b T) int { return cmp.Compare(rate(a), rate(b)) })
		m := rs[len(rs)/2]
		for _, r := range rs {
			worst(&m, r)
		}
		out = append(out, m)
	}
	return out, nil
}

func backlogIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "b-" + strconv.Itoa(i)
	}
	return ids
}

// setOf returns ids as a set: the deliveries a backlog's consumer must
// handle, each once.
func setOf(ids []string) map[string]bool {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

func intakeBacklog(srv *servers, n int, quiet *slog.Logger) (BacklogResult, error) {
	ctx := context.Background()
	prefix, drop := pgPrefix(srv.pg)
	defer drop()
	loader, err := postgres.Open(ctx, srv.dsn, postgres.WithPrefix(prefix))
	if err != nil {
		return BacklogResult{}, err
	}
	ids := backlogIDs(n)
	body := []byte(`{"zen":"backlog"}`)
	start := time.Now()
	for i := 0; i < n; i += 1000 {
		page := ids[i:min(i+1000, n)]
		keys := make([]string, len(page))
		evs := make([]event.Event, len(page))
		for j, id := range page {
			evs[j] = event.Event{ID: id, Source: "backlog", Type: "t", Payload: body}
			keys[j] = event.Key("backlog", id)
		}
		_, errs := loader.EnqueueMany(ctx, keys, evs, time.Minute)
		for _, err := range errs {
			if err != nil {
				loader.Close()
				return BacklogResult{}, err
			}
		}
	}
	loaded := time.Since(start)
	loader.Close() // its advisory lock goes: the consumer adopts everything

	b, err := postgres.Open(ctx, srv.dsn, postgres.WithPrefix(prefix))
	if err != nil {
		return BacklogResult{}, err
	}
	defer b.Close()
	c := newCounter()
	s := intake.New(intake.WithLogger(quiet), intake.WithQueue(b), intake.WithQueueSize(20000))
	s.Handle(func(ctx context.Context, e event.Event) error {
		c.add(e.ID)
		return nil
	}, intake.WithWorkers(16))
	before := writeTransactions(srv.pg)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	drainStart := time.Now()
	go func() { done <- s.Run(rctx) }()
	twice, lost, last := c.settle(setOf(ids), 5*time.Minute)
	drained := last.Sub(drainStart)
	cancel()
	<-done
	commits := writeTransactions(srv.pg) - before - 1
	return BacklogResult{Target: "intake, Postgres queue (EnqueueMany, adopt, ack)", Events: n,
		LoadPerSecond: float64(n) / loaded.Seconds(), DrainPerSecond: float64(n) / drained.Seconds(),
		CommitsPerEvent: float64(commits) / float64(n), Twice: twice, Lost: lost}, nil
}

func riverBacklog(srv *servers, n int, quiet *slog.Logger) (BacklogResult, error) {
	ctx := context.Background()
	c := newCounter()
	client, drop, err := riverClient(ctx, srv.pg, c, quiet, false)
	if err != nil {
		return BacklogResult{}, err
	}
	defer drop()
	ids := backlogIDs(n)
	body := []byte(`{"zen":"backlog"}`)
	start := time.Now()
	for i := 0; i < n; i += 1000 {
		page := ids[i:min(i+1000, n)]
		params := make([]river.InsertManyParams, len(page))
		for j, id := range page {
			params[j] = river.InsertManyParams{Args: WebhookArgs{Delivery: id, Event: "t", Body: body},
				InsertOpts: &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}}
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return BacklogResult{}, fmt.Errorf("river InsertMany: %w", err)
		}
	}
	loaded := time.Since(start)
	before := writeTransactions(srv.pg)
	drainStart := time.Now()
	if err := client.Start(ctx); err != nil {
		return BacklogResult{}, err
	}
	twice, lost, last := c.settle(setOf(ids), 5*time.Minute)
	drained := last.Sub(drainStart)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_ = client.Stop(sctx)
	cancel()
	commits := writeTransactions(srv.pg) - before - 1 // before the schema is dropped
	return BacklogResult{Target: "River (InsertMany, workers, batch completer)", Events: n,
		LoadPerSecond: float64(n) / loaded.Seconds(), DrainPerSecond: float64(n) / drained.Seconds(),
		CommitsPerEvent: float64(commits) / float64(n), Twice: twice, Lost: lost}, nil
}

func printBacklogs(bs []BacklogResult) {
	if len(bs) == 0 {
		return
	}
	fmt.Printf("\n  %-52s %9s %12s %12s %11s %10s\n", "a backlog on PostgreSQL", "events", "preload/s", "drain/s", "commits/ev", "twice/lost")
	for _, b := range bs {
		fmt.Printf("  %-52s %9d %12.0f %12.0f %11.3f %10s\n", b.Target, b.Events, b.LoadPerSecond, b.DrainPerSecond, b.CommitsPerEvent, fmt.Sprintf("%d/%d", b.Twice, b.Lost))
	}
	if len(bs) == 2 && bs[1].DrainPerSecond > 0 {
		fmt.Printf("  intake against River: drain %.2f×, preload %.2f×\n", bs[0].DrainPerSecond/bs[1].DrainPerSecond, bs[0].LoadPerSecond/bs[1].LoadPerSecond)
	}
}
