package intake

import (
	"sort"
	"sync"
	"time"

	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/tracing"
)

// SourceStats are a source's counters since the stream was created, as
// the stream saw them, with its accepted events per 10 seconds over the
// last 10 minutes, oldest first.
type SourceStats struct {
	Name       string           `json:"name"`
	Accepted   int64            `json:"accepted"`
	Duplicates int64            `json:"duplicates"`
	Rejected   map[string]int64 `json:"rejected,omitempty"` // by reason: full, store, closed, invalid…
	Committed  int64            `json:"committed"`
	Dead       int64            `json:"dead"`
	Stale      int64            `json:"stale,omitempty"`  // skipped as older than what was applied (WithSkipStale)
	Failed     int64            `json:"failed,omitempty"` // deliveries nacked: a handler's error, retried or dead-lettered
	Rate       []int64          `json:"rate"`             // accepted per 10 s, the last 60 buckets

	// Fetch on demand (package fetch, given the stream's Metrics): the
	// objects fetched for the source's events, the events served by
	// another's fetch, and the fetches that failed.
	Fetches     int64 `json:"fetches,omitempty"`
	Coalesced   int64 `json:"fetches_coalesced,omitempty"`
	FetchErrors int64 `json:"fetch_errors,omitempty"`
}

// Metrics returns the recorder the stream records to: its own counts
// (see [Stream.Stats]), then the one given with [WithMetrics]. Give it to
// what works beside the stream, such as a fetch.Fetcher
// (fetch.WithMetrics), so that its counts show in the stream's stats and
// console. The webhook handlers and pollers added to the stream record to
// it unless given a recorder of their own.
func (s *Stream) Metrics() metric.Recorder { return s.rec }

// Tracer returns the tracer given with [WithTracer], or nil. The webhook
// handlers and pollers added to the stream use it unless given their own.
func (s *Stream) Tracer() tracing.Tracer { return s.cfg.tracer }

// Stats returns each source's counters, by name.
func (s *Stream) Stats() []SourceStats {
	return s.stats.snapshot(time.Now())
}

const (
	rateBucket  = 10 * time.Second
	rateBuckets = 60
)

// statsRecorder counts what the stream records, per source, beside the
// user's recorder.
type statsRecorder struct {
	next metric.Recorder
	mu   sync.Mutex
	srcs map[string]*sourceCounts
}

type sourceCounts struct {
	SourceStats
	rate [rateBuckets]int64
	at   [rateBuckets]int64 // the bucket's index in time, to tell a stale one
}

func newStatsRecorder(next metric.Recorder) *statsRecorder {
	return &statsRecorder{next: next, srcs: map[string]*sourceCounts{}}
}

func (r *statsRecorder) Count(name, source, reason string, delta int64) {
	r.next.Count(name, source, reason, delta)
	switch name {
	case metric.Accepted, metric.Duplicate, metric.Rejected, metric.Committed, metric.DeadLetter,
		metric.Fetched, metric.Coalesced, metric.FetchFailed, metric.Stale, metric.Failed:
	default:
		return
	}
	if source == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.srcs[source]
	if c == nil {
		c = &sourceCounts{SourceStats: SourceStats{Name: source}}
		r.srcs[source] = c
	}
	switch name {
	case metric.Accepted:
		c.Accepted += delta
		b := time.Now().UnixNano() / int64(rateBucket)
		i := b % rateBuckets
		if c.at[i] != b {
			c.at[i], c.rate[i] = b, 0
		}
		c.rate[i] += delta
	case metric.Duplicate:
		c.Duplicates += delta
	case metric.Rejected:
		if c.Rejected == nil {
			c.Rejected = map[string]int64{}
		}
		c.Rejected[reason] += delta
	case metric.Committed:
		c.Committed += delta
	case metric.DeadLetter:
		c.Dead += delta
	case metric.Stale:
		c.Stale += delta
	case metric.Failed:
		c.Failed += delta
	case metric.Fetched:
		c.Fetches += delta
	case metric.Coalesced:
		c.Coalesced += delta
	case metric.FetchFailed:
		c.FetchErrors += delta
	}
}

func (r *statsRecorder) Gauge(name, source string, v float64) { r.next.Gauge(name, source, v) }

func (r *statsRecorder) Observe(name, source string, d time.Duration) {
	r.next.Observe(name, source, d)
}

func (r *statsRecorder) snapshot(now time.Time) []SourceStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	nowB := now.UnixNano() / int64(rateBucket)
	out := make([]SourceStats, 0, len(r.srcs))
	for _, c := range r.srcs {
		st := c.SourceStats
		if c.Rejected != nil {
			st.Rejected = make(map[string]int64, len(c.Rejected))
			for k, v := range c.Rejected {
				st.Rejected[k] = v
			}
		}
		st.Rate = make([]int64, rateBuckets)
		for k := range rateBuckets {
			b := nowB - int64(rateBuckets-1-k)
			if i := b % rateBuckets; c.at[i] == b {
				st.Rate[k] = c.rate[i]
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
