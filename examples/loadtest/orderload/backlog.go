package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/examples/loadtest/internal/pgtest"
)

// BacklogResult is a backlog's drain.
type BacklogResult struct {
	Events, Keys  int
	Unordered     bool
	Queued        time.Duration // to store the backlog
	Drained       time.Duration // to handle all of it, ordered
	PerSecond     float64
	Overlaps      int64
	Backwards     int64
	PeakRSSMiB    float64 // the process's peak resident memory (VmHWM)
	HeapAfterMiB  float64 // Go heap in use once drained, after a GC
	PeakHeapMiB   float64 // the largest Go heap in use seen while draining
	StillQueued   int64
	HandledEvents int64
}

// Backlog stores events about keys objects (each object's events in
// order) with no stream running, then starts a stream with one ordered
// subscription of workers and times the drain, checking order and
// sampling memory.
func Backlog(ctx context.Context, dsn string, events, keys, workers int, unordered bool) (BacklogResult, error) {
	res := BacklogResult{Events: events, Keys: keys, Unordered: unordered}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return res, err
	}
	defer pool.Close()
	prefix := newPrefix()
	defer pgtest.DropPrefix(pool, prefix)
	writer, err := postgres.New(ctx, pool, postgres.WithPrefix(prefix))
	if err != nil {
		return res, err
	}
	// Store the backlog as a crashed holder would leave it: claims that
	// ran out at once, for the stream to adopt.
	began := time.Now()
	per := events / keys
	const batch = 2000
	// Each n in turn, its keys in batches eight at a time: an object's
	// events are stored in order.
	for n := range per {
		var wg sync.WaitGroup
		errs := make(chan error, keys/batch+1)
		sem := make(chan struct{}, 8)
		for from := 0; from < keys; from += batch {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				var ks []string
				var evs []event.Event
				for k := from; k < min(from+batch, keys); k++ {
					e := event.Event{Source: "load", ID: fmt.Sprintf("k%d-%d", k, n), Type: "t", Payload: []byte(`{}`),
						Meta: map[string]string{event.MetaOrder: fmt.Sprintf("k%d", k)}}
					ks, evs = append(ks, e.Key()), append(evs, e)
				}
				_, es := writer.EnqueueMany(ctx, ks, evs, time.Microsecond)
				for _, err := range es {
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		select {
		case err := <-errs:
			return res, err
		default:
		}
	}
	_ = writer.Close()
	res.Queued = time.Since(began)

	pg, err := postgres.New(ctx, pool, postgres.WithPrefix(prefix))
	if err != nil {
		return res, err
	}
	defer pg.Close()
	s := intake.New(intake.WithQueue(pg), intake.WithLogger(quiet))
	tr := newTracker()
	s.Handle(func(ctx context.Context, e event.Event) error {
		k, _, _ := strings.Cut(e.ID, "-")
		began := tr.begin(k, nOf(e.ID))
		tr.end(k, began)
		return nil
	}, append([]intake.SubscribeOption{intake.WithWorkers(workers)}, unorderedOpt(unordered)...)...)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	began = time.Now()
	go func() { done <- s.Run(runCtx) }()
	var ms runtime.MemStats
	for tr.handled.Load() < int64(per*keys) {
		time.Sleep(100 * time.Millisecond)
		runtime.ReadMemStats(&ms)
		res.PeakHeapMiB = max(res.PeakHeapMiB, float64(ms.HeapInuse)/(1<<20))
		if time.Since(began) > 30*time.Minute {
			break
		}
	}
	res.Drained = time.Since(began)
	res.HandledEvents = tr.handled.Load()
	res.PerSecond = float64(res.HandledEvents) / res.Drained.Seconds()
	res.Overlaps, res.Backwards = tr.overlaps.Load(), tr.backwards.Load()
	cancel()
	<-done
	runtime.GC()
	runtime.ReadMemStats(&ms)
	res.HeapAfterMiB = float64(ms.HeapInuse) / (1 << 20)
	res.PeakRSSMiB = peakRSS()
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM `+prefix+`keys WHERE state = 1 AND seq IS NOT NULL`).Scan(&res.StillQueued)
	return res, nil
}

// peakRSS reads the process's peak resident set (Linux), in MiB.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), &kb)
			return kb / 1024
		}
	}
	return 0
}

func unorderedOpt(unordered bool) []intake.SubscribeOption {
	if unordered {
		return []intake.SubscribeOption{intake.WithUnordered()}
	}
	return nil
}
