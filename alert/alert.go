// Package alert calls the app's hook when a stream crosses a threshold —
// and once more when it recovers — so that an operator hears of a
// backlog, a burst of dead letters, a store outage or a silent source
// before the users do.
//
//	w := alert.New(stream, func(ctx context.Context, a alert.Alert) { page(a) },
//		alert.QueueDepth(5000), alert.DeadLetters(10, time.Minute), alert.StoreDown(),
//		alert.Silent("stripe", 15*time.Minute))
//	go w.Run(ctx)
//
// A Watcher samples the stream's Health and Stats every interval (no
// store call: they are what the stream keeps) and evaluates each rule. A
// rule fires when its value goes above its threshold and recovers when
// it falls back to it or below: the hook is called once for each
// crossing, never on every sample while it holds.
package alert

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/intakehq/intake"
)

// Sample is what a rule reads: the stream's health and counters at a
// moment, and the previous sample's (zero on the first).
type Sample struct {
	At     time.Time
	Health intake.Health
	Stats  []intake.SourceStats
	Prev   *Sample
}

// Rule is one threshold: Value measures the sample, and the rule fires
// while it is above Above.
type Rule struct {
	Name  string
	Above float64
	Value func(s Sample) float64
}

// Alert is one crossing: a rule fired (Firing) or recovered.
type Alert struct {
	Rule   string
	Firing bool
	Value  float64 // the value that crossed
	Above  float64 // the threshold
	At     time.Time
}

func (a Alert) String() string {
	state := "recovered"
	if a.Firing {
		state = "firing"
	}
	return fmt.Sprintf("%s %s: %g (threshold %g)", a.Rule, state, a.Value, a.Above)
}

// Hook is called on each crossing, on the watcher's goroutine.
type Hook func(ctx context.Context, a Alert)

// Watcher evaluates rules over a stream. Create it with [New].
type Watcher struct {
	s     *intake.Stream
	hook  Hook
	rules []Rule
	every time.Duration
	log   *slog.Logger
	now   func() time.Time

	mu     sync.Mutex
	firing map[string]bool
	prev   *Sample
}

// New returns a watcher of s that calls hook on every crossing of rules.
// It panics if a rule has no name or value, or two share a name.
func New(s *intake.Stream, hook Hook, rules ...Rule) *Watcher {
	seen := map[string]bool{}
	for _, r := range rules {
		if r.Name == "" || r.Value == nil || seen[r.Name] {
			panic(fmt.Sprintf("alert: rule %q without a name or a value, or named twice", r.Name))
		}
		seen[r.Name] = true
	}
	if hook == nil {
		panic("alert: New with a nil hook")
	}
	return &Watcher{s: s, hook: hook, rules: rules, every: 10 * time.Second, log: slog.Default(), now: time.Now, firing: map[string]bool{}}
}

// Every sets the sampling interval. Defaults to 10 seconds; it panics
// unless d is positive.
func (w *Watcher) Every(d time.Duration) *Watcher {
	if d <= 0 {
		panic(fmt.Sprintf("alert: Every(%v): must be positive", d))
	}
	w.every = d
	return w
}

// Run samples every interval until ctx is done, then returns nil.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		w.Check(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Check takes one sample now and calls the hook for each rule that
// crossed since the last.
func (w *Watcher) Check(ctx context.Context) {
	w.mu.Lock()
	s := Sample{At: w.now(), Health: w.s.Health(), Stats: w.s.Stats(), Prev: w.prev}
	s.Prev = w.prev
	if s.Prev != nil {
		s.Prev.Prev = nil // keep one sample back, not a chain
	}
	w.prev = &s
	var crossed []Alert
	for _, r := range w.rules {
		v := r.Value(s)
		fire := v > r.Above
		if fire != w.firing[r.Name] {
			w.firing[r.Name] = fire
			crossed = append(crossed, Alert{Rule: r.Name, Firing: fire, Value: v, Above: r.Above, At: s.At})
		}
	}
	w.mu.Unlock()
	for _, a := range crossed {
		w.log.Warn("alert: "+a.String(), "rule", a.Rule, "firing", a.Firing, "value", a.Value)
		w.hook(ctx, a)
	}
}

// Firing returns the names of the rules firing now.
func (w *Watcher) Firing() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, r := range w.rules {
		if w.firing[r.Name] {
			out = append(out, r.Name)
		}
	}
	return out
}

// QueueDepth fires while more than n events are stored and not yet
// committed.
func QueueDepth(n int) Rule {
	return Rule{Name: "queue-depth", Above: float64(n), Value: func(s Sample) float64 { return float64(s.Health.QueueDepth) }}
}

// DeadLetters fires while more than n events were dead-lettered per
// window (the rate between two samples, scaled to the window).
func DeadLetters(n int, per time.Duration) Rule {
	if per <= 0 {
		panic(fmt.Sprintf("alert: DeadLetters(%d, %v): the window must be positive", n, per))
	}
	return Rule{Name: "dead-letters", Above: float64(n), Value: func(s Sample) float64 {
		if s.Prev == nil {
			return 0
		}
		d := total(s.Stats, func(st intake.SourceStats) int64 { return st.Dead }) - total(s.Prev.Stats, func(st intake.SourceStats) int64 { return st.Dead })
		el := s.At.Sub(s.Prev.At)
		if el <= 0 {
			return 0
		}
		return float64(d) * float64(per) / float64(el)
	}}
}

// StoreDown fires while the stream's last store check failed (its value
// is 1 then, else 0).
func StoreDown() Rule {
	return Rule{Name: "store-down", Above: 0, Value: func(s Sample) float64 {
		if s.Health.Store != "ok" && s.Health.Store != "" {
			return 1
		}
		return 0
	}}
}

// Silent fires while the named source has had no success (a poll that
// stored its pages, a webhook stored) for longer than d: its value is the
// seconds since its last success (since the watcher's first sample when
// it never had one).
func Silent(source string, d time.Duration) Rule {
	var first time.Time
	return Rule{Name: "silent:" + source, Above: d.Seconds(), Value: func(s Sample) float64 {
		if first.IsZero() {
			first = s.At
		}
		last := first
		for _, h := range s.Health.Sources {
			if h.Name == source && h.LastSuccess.After(last) {
				last = h.LastSuccess
			}
		}
		return s.At.Sub(last).Seconds()
	}}
}

// Rejected fires while a source's requests turned away for reason
// (webhook rejections such as "signature-mismatch", or the stream's
// "full", "store") exceed n per window.
func Rejected(source, reason string, n int, per time.Duration) Rule {
	if per <= 0 {
		panic(fmt.Sprintf("alert: Rejected(%q, %q, %d, %v): the window must be positive", source, reason, n, per))
	}
	count := func(s Sample) int64 {
		var c int64
		for _, st := range s.Stats {
			if st.Name == source {
				c += st.Rejected[reason]
			}
		}
		for _, h := range s.Health.Sources {
			if h.Name == source {
				c += h.Rejected[reason]
			}
		}
		return c
	}
	return Rule{Name: "rejected:" + source + ":" + reason, Above: float64(n), Value: func(s Sample) float64 {
		if s.Prev == nil || !s.At.After(s.Prev.At) {
			return 0
		}
		return float64(count(s)-count(*s.Prev)) * float64(per) / float64(s.At.Sub(s.Prev.At))
	}}
}

// Failing fires while the named subscription's deliveries have failed
// (its handler returned an error, or its reader nacked) more than n times
// in a row: its value is the failures since its last ack.
func Failing(subscription string, n int) Rule {
	return Rule{Name: "failing:" + subscription, Above: float64(n), Value: func(s Sample) float64 {
		return float64(s.Health.Failing[subscription])
	}}
}

// FailureRate fires while a source's deliveries fail (a handler's error,
// in any subscription) more than n times per window.
func FailureRate(source string, n int, per time.Duration) Rule {
	if per <= 0 {
		panic(fmt.Sprintf("alert: FailureRate(%q, %d, %v): the window must be positive", source, n, per))
	}
	count := func(s Sample) int64 {
		for _, st := range s.Stats {
			if st.Name == source {
				return st.Failed
			}
		}
		return 0
	}
	return Rule{Name: "failure-rate:" + source, Above: float64(n), Value: func(s Sample) float64 {
		if s.Prev == nil || !s.At.After(s.Prev.At) {
			return 0
		}
		return float64(count(s)-count(*s.Prev)) * float64(per) / float64(s.At.Sub(s.Prev.At))
	}}
}

// OldestAge fires while the oldest event the stream holds has waited
// longer than d (since it was stored or adopted, uncommitted): a stuck
// handler or a backlog the workers do not keep up with. Its value is the
// age in seconds.
func OldestAge(d time.Duration) Rule {
	return Rule{Name: "oldest-age", Above: d.Seconds(), Value: func(s Sample) float64 { return s.Health.Oldest.Seconds() }}
}

func total(stats []intake.SourceStats, f func(intake.SourceStats) int64) int64 {
	var n int64
	for _, st := range stats {
		n += f(st)
	}
	return n
}
