// Package promrecorder exports intake's metrics to Prometheus: a
// [metric.Recorder] that turns each measurement into a Prometheus counter,
// gauge or histogram, labelled by source (where it applies) and reason
// (for the counters that give one), with intake's help texts
// ([metric.Describe]).
//
//	reg := prometheus.NewRegistry()
//	stream := intake.New(intake.WithMetrics(promrecorder.New(reg)))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Metric names are intake's (see package metric), e.g.
// intake_events_accepted_total{source="stripe"} and
// intake_webhook_requests_total{source="stripe",reason="signature-mismatch"}.
// The webhook handlers and pollers added to the stream record to it too,
// unless given a recorder of their own.
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
	labels     map[string][]string // each metric's label names
	counters   map[string]*prometheus.CounterVec
	gauges     map[string]*prometheus.GaugeVec
	histograms map[string]*prometheus.HistogramVec
}

var _ metric.Recorder = (*Recorder)(nil)

// New returns a recorder that registers its metrics with reg.
func New(reg prometheus.Registerer) *Recorder {
	return &Recorder{
		reg:        reg,
		labels:     map[string][]string{},
		counters:   map[string]*prometheus.CounterVec{},
		gauges:     map[string]*prometheus.GaugeVec{},
		histograms: map[string]*prometheus.HistogramVec{},
	}
}

// help is the metric's help text: intake's description of it, or, for a
// name that is not intake's, the name in words.
func help(name string) string {
	if i, ok := metric.Describe(name); ok {
		return i.Help
	}
	return "intake: " + strings.ReplaceAll(strings.TrimPrefix(name, "intake_"), "_", " ")
}

// values returns the label values of name's labels (metric.Labels).
func values(labels []string, source, reason string) []string {
	v := make([]string, len(labels))
	for i, l := range labels {
		if l == "source" {
			v[i] = source
		} else {
			v[i] = reason
		}
	}
	return v
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
		r.labels[name] = metric.Labels(name, true)
		c = register(r.reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help(name)}, r.labels[name]))
		r.counters[name] = c
	}
	labels := r.labels[name]
	r.mu.Unlock()
	c.WithLabelValues(values(labels, source, reason)...).Add(float64(delta))
}

// Gauge implements [metric.Recorder].
func (r *Recorder) Gauge(name, source string, v float64) {
	r.mu.Lock()
	g, ok := r.gauges[name]
	if !ok {
		r.labels[name] = metric.Labels(name, false)
		g = register(r.reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help(name)}, r.labels[name]))
		r.gauges[name] = g
	}
	labels := r.labels[name]
	r.mu.Unlock()
	g.WithLabelValues(values(labels, source, "")...).Set(v)
}

// Observe implements [metric.Recorder], in seconds.
func (r *Recorder) Observe(name, source string, d time.Duration) {
	r.mu.Lock()
	h, ok := r.histograms[name]
	if !ok {
		h = register(r.reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: name, Help: help(name),
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, metric.Labels(name, false)))
		r.labels[name] = metric.Labels(name, false)
		r.histograms[name] = h
	}
	labels := r.labels[name]
	r.mu.Unlock()
	h.WithLabelValues(values(labels, source, "")...).Observe(d.Seconds())
}
