package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// BenchmarkPutAck measures a stream's Put → deliver → Ack throughput with
// the SQLite queue (group commit, synchronous FULL and NORMAL) against the
// in-memory default in the same run, from 32 concurrent putters:
//
//	go test ./backend/sqlite -run x -bench PutAck -benchtime 20000x
func BenchmarkPutAck(b *testing.B) {
	b.Run("queue=memory", func(b *testing.B) { putAck(b, nil) })
	for _, mode := range []string{"FULL", "NORMAL"} {
		b.Run("queue=sqlite-"+mode, func(b *testing.B) {
			q, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db"), sqlite.WithSynchronous(mode))
			if err != nil {
				b.Fatal(err)
			}
			defer q.Close()
			putAck(b, q)
		})
	}
}

func putAck(b *testing.B, q dedupe.Queue) {
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
