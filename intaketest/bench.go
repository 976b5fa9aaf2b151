// Package intaketest is a test kit that runs the engine: a benchmark body
// backend modules share. (The conformance suites, which backends must not
// need the engine for, are in package dedupetest.)
package intaketest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// PutAck runs a stream on q (the in-memory default when q is nil): 32
// goroutines put events with a small payload, 16 handler workers ack them,
// and it reports events/s, each claimed, stored, delivered, acked and
// committed.
func PutAck(b *testing.B, q dedupe.Queue) {
	opts := []intake.Option{intake.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), intake.WithQueueSize(4096)}
	if q != nil {
		opts = append(opts, intake.WithQueue(q))
	}
	s := intake.New(opts...)
	var acked atomic.Int64
	s.Handle(func(context.Context, event.Event) error { acked.Add(1); return nil }, intake.WithWorkers(16))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for errors.Is(s.Put(ctx, event.Event{Source: "warm", ID: "up"}), event.ErrNotRunning) {
		time.Sleep(time.Millisecond)
	}
	for acked.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	var next atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := event.Event{Source: "bench", ID: fmt.Sprint(next.Add(1)), Payload: []byte(`{"amount":100}`)}
			for {
				err := s.Put(ctx, e)
				if err == nil {
					break
				}
				if !errors.Is(err, event.ErrQueueFull) {
					b.Error(err)
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
	})
	for acked.Load() < int64(b.N)+1 {
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	cancel()
	<-done
}
