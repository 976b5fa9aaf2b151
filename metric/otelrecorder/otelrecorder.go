// Package otelrecorder exports intake's metrics through OpenTelemetry: a
// [metric.Recorder] that turns each measurement into an instrument of a
// [otelmetric.Meter] — counters, gauges, and histograms in seconds — with
// the attributes source (where it applies) and reason (for the counters
// that give one), described as package metric describes them.
//
//	rec, err := otelrecorder.New(otel.Meter("github.com/intakehq/intake"))
//	stream := intake.New(intake.WithMetrics(rec))
package otelrecorder

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelmetric "go.opentelemetry.io/otel/metric"

	"github.com/intakehq/intake/metric"
)

// Recorder is a [metric.Recorder] for OpenTelemetry. Create it with [New].
// It is safe for concurrent use; each instrument is created on first use.
type Recorder struct {
	meter otelmetric.Meter

	mu         sync.Mutex
	counters   map[string]otelmetric.Int64Counter
	gauges     map[string]otelmetric.Float64Gauge
	histograms map[string]otelmetric.Float64Histogram
}

var _ metric.Recorder = (*Recorder)(nil)

// New returns a recorder that creates its instruments with meter.
func New(meter otelmetric.Meter) *Recorder {
	return &Recorder{
		meter:      meter,
		counters:   map[string]otelmetric.Int64Counter{},
		gauges:     map[string]otelmetric.Float64Gauge{},
		histograms: map[string]otelmetric.Float64Histogram{},
	}
}

// Count implements [metric.Recorder].
func (r *Recorder) Count(name, source, reason string, delta int64) {
	r.mu.Lock()
	c, ok := r.counters[name]
	if !ok {
		var err error
		if c, err = r.meter.Int64Counter(name, otelmetric.WithDescription(describe(name))); err != nil {
			r.mu.Unlock()
			return
		}
		r.counters[name] = c
	}
	r.mu.Unlock()
	c.Add(context.Background(), delta, otelmetric.WithAttributes(attrs(name, true, source, reason)...))
}

// Gauge implements [metric.Recorder].
func (r *Recorder) Gauge(name, source string, v float64) {
	r.mu.Lock()
	g, ok := r.gauges[name]
	if !ok {
		var err error
		if g, err = r.meter.Float64Gauge(name, otelmetric.WithDescription(describe(name))); err != nil {
			r.mu.Unlock()
			return
		}
		r.gauges[name] = g
	}
	r.mu.Unlock()
	g.Record(context.Background(), v, otelmetric.WithAttributes(attrs(name, false, source, "")...))
}

// Observe implements [metric.Recorder], in seconds.
func (r *Recorder) Observe(name, source string, d time.Duration) {
	r.mu.Lock()
	h, ok := r.histograms[name]
	if !ok {
		var err error
		if h, err = r.meter.Float64Histogram(name, otelmetric.WithUnit("s"), otelmetric.WithDescription(describe(name))); err != nil {
			r.mu.Unlock()
			return
		}
		r.histograms[name] = h
	}
	r.mu.Unlock()
	h.Record(context.Background(), d.Seconds(), otelmetric.WithAttributes(attrs(name, false, source, "")...))
}

// describe is intake's description of a metric, or none.
func describe(name string) string {
	i, _ := metric.Describe(name)
	return i.Help
}

// attrs are a measurement's attributes: source and reason where they
// apply (metric.Labels).
func attrs(name string, counter bool, source, reason string) []attribute.KeyValue {
	labels := metric.Labels(name, counter)
	kv := make([]attribute.KeyValue, 0, len(labels))
	for _, l := range labels {
		if l == "source" {
			kv = append(kv, attribute.String("source", source))
		} else {
			kv = append(kv, attribute.String("reason", reason))
		}
	}
	return kv
}
