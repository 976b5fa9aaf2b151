package otelrecorder_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/metric/otelrecorder"
)

// TestExportedValues runs a stream with the recorder and reads the values
// back through a manual reader.
func TestExportedValues(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	provider := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	rec := otelrecorder.New(provider.Meter("intake-test"))
	s := intake.New(intake.WithMetrics(rec), intake.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	deliveries := s.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for errors.Is(s.Put(ctx, event.Event{Source: "shop", ID: "1"}), event.ErrNotRunning) {
		time.Sleep(time.Millisecond)
	}
	(<-deliveries).Ack()
	_ = s.Put(ctx, event.Event{Source: "shop", ID: "1"}) // duplicate
	_ = s.Put(ctx, event.Event{Source: "shop", ID: "2"})
	(<-deliveries).Nack(errors.New("later"))
	cancel()
	go func() {
		for d := range deliveries {
			d.Ack()
		}
	}()
	<-done

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sum := func(name string, attrs ...attribute.KeyValue) int64 {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				if m.Name != name {
					continue
				}
				data, ok := m.Data.(metricdata.Sum[int64])
				if !ok {
					t.Fatalf("%s is %T", name, m.Data)
				}
				var total int64
				for _, dp := range data.DataPoints {
					match := true
					for _, a := range attrs {
						if v, ok := dp.Attributes.Value(a.Key); !ok || v != a.Value {
							match = false
						}
					}
					if match {
						total += dp.Value
					}
				}
				return total
			}
		}
		t.Errorf("no %s", name)
		return -1
	}
	if got := sum(metric.Accepted, attribute.String("source", "shop")); got != 2 {
		t.Errorf("accepted = %d, want 2", got)
	}
	if got := sum(metric.Duplicate, attribute.String("reason", "done")); got != 1 {
		t.Errorf("duplicates = %d, want 1", got)
	}
	if got := sum(metric.Nacked, attribute.String("reason", "nack")); got != 1 {
		t.Errorf("nacks = %d, want 1", got)
	}
	var sawHistogram bool
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == metric.Processing {
				sawHistogram = len(h.DataPoints) > 0 && h.DataPoints[0].Count >= 1
			}
		}
	}
	if !sawHistogram {
		t.Error("no processing-time histogram")
	}
}
