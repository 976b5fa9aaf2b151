// Package promrecorder exports intake's metrics to Prometheus: a
// [metric.Recorder] that turns each measurement into a Prometheus counter,
// gauge or histogram, labelled by source (and reason, for counters).
//
//	reg := prometheus.NewRegistry()
//	stream := intake.New(intake.WithMetrics(promrecorder.New(reg)))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Metric names are intake's (see package metric), e.g.
// intake_events_accepted_total{source="stripe",reason=""}.
package promrecorder

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/intakehq/intake/metric"
)

// Recorder is a [metric.Recorder] for Prometheus. Create it with [New]. It
// is safe for concurrent use; each metric is registered on first use.
type Recorder struct {
	reg prometheus.Registerer

	mu         sync.Mutex
	counters   map[string]*prometheus.CounterVec
	gauges     map[string]*prometheus.GaugeVec
	histograms map[string]*prometheus.HistogramVec
}

var _ metric.Recorder = (*Recorder)(nil)

// New returns a recorder that registers its metrics with reg.
func New(reg prometheus.Registerer) *Recorder {
	return &Recorder{
		reg:        reg,
		counters:   map[string]*prometheus.CounterVec{},
		gauges:     map[string]*prometheus.GaugeVec{},
		histograms: map[string]*prometheus.HistogramVec{},
	}
}

func help(name string) string {
	return "intake: " + strings.ReplaceAll(strings.TrimPrefix(name, "intake_"), "_", " ")
}

// register registers c, or returns the collector already registered under
// its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// Count implements [metric.Recorder].
func (r *Recorder) Count(name, source, reason string, delta int64) {
	r.mu.Lock()
	c, ok := r.counters[name]
	if !ok {
		c = register(r.reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help(name)}, []string{"source", "reason"}))
		r.counters[name] = c
	}
	r.mu.Unlock()
	c.WithLabelValues(source, reason).Add(float64(delta))
}

// Gauge implements [metric.Recorder].
func (r *Recorder) Gauge(name, source string, v float64) {
	r.mu.Lock()
	g, ok := r.gauges[name]
	if !ok {
		g = register(r.reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help(name)}, []string{"source"}))
		r.gauges[name] = g
	}
	r.mu.Unlock()
	g.WithLabelValues(source).Set(v)
}

// Observe implements [metric.Recorder], in seconds.
func (r *Recorder) Observe(name, source string, d time.Duration) {
	r.mu.Lock()
	h, ok := r.histograms[name]
	if !ok {
		h = register(r.reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: name, Help: help(name),
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"source"}))
		r.histograms[name] = h
	}
	r.mu.Unlock()
	h.WithLabelValues(source).Observe(d.Seconds())
}
