package metric_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/metric"
)

// counters is a Recorder that keeps counts in a map; an adapter for
// Prometheus or OpenTelemetry has the same shape.
type counters struct {
	metric.Discard // gauges and histograms ignored
	mu             sync.Mutex
	n              map[string]int64
}

func (c *counters) Count(name, source, reason string, delta int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[name+"{"+reason+"}"] += delta
}

func Example() {
	rec := &counters{n: map[string]int64{}}
	s := intake.New(intake.WithMetrics(rec), intake.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	deliveries := s.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	e := event.Event{Source: "shop", ID: "1"}
	for errors.Is(s.Put(ctx, e), event.ErrNotRunning) {
		time.Sleep(time.Millisecond)
	}
	(<-deliveries).Ack()
	_ = s.Put(ctx, e) // a duplicate
	cancel()
	<-done

	rec.mu.Lock()
	defer rec.mu.Unlock()
	fmt.Println(rec.n[metric.Accepted+"{}"], rec.n[metric.Duplicate+"{done}"], rec.n[metric.Committed+"{}"])
	// Output: 1 1 1
}
