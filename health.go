package intake

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/intakehq/intake/event"
)

// Pinger is a store or a queue that can say whether it is reachable. The
// backend modules' types are Pingers; a store that is not is taken as
// always reachable (the in-memory one).
type Pinger interface {
	Ping(ctx context.Context) error
}

// Health is a stream's readiness: ready means running, its store
// reachable at the last check, and room in its queue.
type Health struct {
	Ready         bool           `json:"ready"`
	Running       bool           `json:"running"`
	Store         string         `json:"store"` // "ok", or the last check's error
	StoreChecked  time.Time      `json:"store_checked,omitzero"`
	QueueDepth    int            `json:"queue_depth"`
	QueueCapacity int            `json:"queue_capacity"`
	Sources       []SourceHealth `json:"sources,omitempty"`
	InFlight      map[string]int `json:"in_flight,omitempty"` // handler calls running, by subscription
	// DeadEvicted counts dead events the in-memory default dropped to
	// keep its newest 10,000 (a durable queue keeps them all).
	DeadEvicted int64 `json:"dead_evicted,omitempty"`
	// Oldest is the age of the oldest event this process holds (since it
	// stored or adopted it; not yet committed): zero when it holds none.
	Oldest time.Duration `json:"oldest_ns,omitempty"`
	// Failing counts, by subscription, the deliveries nacked (a handler's
	// error) one after another since its last ack; a subscription whose
	// last delivery was acked is absent.
	Failing map[string]int64 `json:"failing,omitempty"`
}

// SourceHealth is one source's part of [Health]: its name and, when it is
// an [event.Reporter], its status. Sources added under one name (a
// provider's webhook and its poller) are one SourceHealth: its status
// merges theirs (the latest success, the latest error, rejections summed)
// and Paths holds each one's own.
type SourceHealth struct {
	Name string `json:"name"`
	event.Status
	Paths []PathHealth `json:"paths,omitempty"`
}

// PathHealth is the status of one source among those that share a name:
// Via is "webhook" or "poll" for intake's own (a source with a method
// Via() event.Via says which), else "".
type PathHealth struct {
	Via string `json:"via,omitempty"`
	event.Status
}

// merge adds st to m: the latest success and error, rejections summed.
func merge(m *event.Status, st event.Status) {
	if st.LastSuccess.After(m.LastSuccess) {
		m.LastSuccess = st.LastSuccess
	}
	if st.LastError.After(m.LastError) || m.Err == "" && st.Err != "" {
		m.LastError, m.Err = st.LastError, st.Err
	}
	for k, v := range st.Rejected {
		if m.Rejected == nil {
			m.Rejected = map[string]int64{}
		}
		m.Rejected[k] += v
	}
}

// Health returns the stream's readiness now. It does not touch the store:
// reachability is checked in the background every health interval (see
// [WithHealthInterval]) while Run runs, so Health is cheap enough for a
// load balancer's probe. It is safe to call from any goroutine.
func (s *Stream) Health() Health {
	now := time.Now()
	s.mu.Lock()
	h := Health{
		Running:       s.state == stateRunning,
		QueueDepth:    s.queued,
		QueueCapacity: s.cfg.queueSize,
	}
	if s.oldest != nil { // the first admitted of those held: about the oldest
		h.Oldest = max(0, now.Sub(s.oldest.start))
	}
	sources := s.sources
	s.mu.Unlock()
	h.Store = "ok"
	if c := s.storeCheck.Load(); c != nil {
		h.StoreChecked = c.at
		if c.err != "" {
			h.Store = c.err
		}
	}
	at := map[string]int{} // index in h.Sources by name
	for _, src := range sources {
		var path PathHealth
		if v, ok := src.(interface{ Via() event.Via }); ok {
			path.Via = v.Via().String()
		}
		if r, ok := src.(event.Reporter); ok {
			path.Status = r.Status()
		}
		i, ok := at[src.Name()]
		if !ok {
			i = len(h.Sources)
			at[src.Name()] = i
			h.Sources = append(h.Sources, SourceHealth{Name: src.Name()})
		}
		sh := &h.Sources[i]
		merge(&sh.Status, path.Status)
		sh.Paths = append(sh.Paths, path)
	}
	for _, sub := range s.subs {
		if n := sub.busy.Load(); n > 0 {
			if h.InFlight == nil {
				h.InFlight = map[string]int{}
			}
			h.InFlight[sub.name] = int(n)
		}
		if n := sub.failing.Load(); n > 0 {
			if h.Failing == nil {
				h.Failing = map[string]int64{}
			}
			h.Failing[sub.name] = n
		}
	}
	if sk, ok := s.keys.(storeKeeper); ok {
		h.DeadEvicted = sk.dead.evicted.Load()
	}
	h.Ready = h.Running && h.Store == "ok" && h.QueueDepth < h.QueueCapacity
	return h
}

// HealthHandler returns an http.Handler for a readiness probe: 200 and the
// [Health] as JSON when ready, 503 and the same JSON otherwise. Mount it
// where your probes look, e.g. mux.Handle("GET /readyz", s.HealthHandler()).
func (s *Stream) HealthHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := s.Health()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if !h.Ready {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(h)
	})
}

type storeCheck struct {
	at  time.Time
	err string
}

// checkStore pings the store or queue every health interval until stop
// closes, each ping bounded by the interval, and records the result.
func (s *Stream) checkStore(stop <-chan struct{}) {
	var p Pinger
	switch {
	case s.cfg.queue != nil:
		p, _ = s.cfg.queue.(Pinger)
	default:
		p, _ = s.cfg.store.(Pinger)
	}
	if p == nil {
		return
	}
	every := s.cfg.healthInterval
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), every)
		err := p.Ping(ctx)
		cancel()
		c := &storeCheck{at: time.Now()}
		if err != nil {
			c.err = err.Error()
			s.logs.Log(s.log, slog.LevelError, "store-unreachable", "intake: store unreachable; not ready", "err", err)
		}
		s.storeCheck.Store(c)
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}
