// Package budget paces the requests made with one credential of an API —
// polls, fetches on demand, reconciliation sweeps — on every replica, from
// one shared state: a rate (requests per interval, spaced evenly so that
// none waits for a 429), an optional quota (requests per day, say, which
// stops at its limit and resumes after its reset), and what the API says
// is left (the IETF RateLimit header, X-RateLimit-Remaining and -Reset,
// Retry-After), which slows the pace to what remains before the reset.
//
// A [Budget] reserves each request a slot: the earliest time the rate,
// the quota and the API's own word allow, in the order callers asked
// (first come, first served: no connection that shares the credential is
// starved). Its state lives in a [Store] — [Memory] in one process;
// backend/postgres and backend/sqlite for replicas — updated
// atomically, so that replicas sharing a credential share its budget.
//
// [Budget.Transport] wraps an http.RoundTripper: every request waits for
// its credential's slot and every response teaches the budget, so that
// pollers, fetchers and sweeps that share the http.Client share the
// budget without knowing of it.
package budget

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/intakehq/intake/metric"
)

// Policy is what the API promises a credential: Rate requests every Per,
// spaced evenly (Burst of them may go back to back), and optionally a
// Quota of requests every QuotaPer. A zero Rate means no pace of our own
// (only what the API says); a zero Quota, no quota.
type Policy struct {
	Rate     int
	Per      time.Duration
	Burst    int // defaults to 1
	Quota    int
	QuotaPer time.Duration
}

// interval is the spacing of the rate: Per / Rate, or 0 without a rate.
func (p Policy) interval() time.Duration {
	if p.Rate <= 0 || p.Per <= 0 {
		return 0
	}
	return p.Per / time.Duration(p.Rate)
}

// Validate reports a policy that cannot pace anything.
func (p Policy) Validate() error {
	switch {
	case p.Rate < 0 || p.Quota < 0 || p.Burst < 0:
		return fmt.Errorf("budget: negative rate, quota or burst in %+v", p)
	case p.Rate > 0 && p.Per <= 0:
		return fmt.Errorf("budget: a rate of %d per %v", p.Rate, p.Per)
	case p.Quota > 0 && p.QuotaPer <= 0:
		return fmt.Errorf("budget: a quota of %d per %v", p.Quota, p.QuotaPer)
	}
	return nil
}

// State is a credential's budget as a store keeps it. Stores treat it as
// opaque: [Budget] reads and writes it inside [Store.Update].
type State struct {
	Next       time.Time     `json:"next,omitzero"`        // the theoretical time of the next slot (GCRA)
	Blocked    time.Time     `json:"blocked,omitzero"`     // no request before: a Retry-After, or nothing left until the reset
	Pace       time.Duration `json:"pace,omitempty"`       // the spacing what the API says is left implies …
	PaceUntil  time.Time     `json:"pace_until,omitzero"`  // … until its reset
	Used       int           `json:"used,omitempty"`       // requests of the quota's window
	QuotaReset time.Time     `json:"quota_reset,omitzero"` // when the quota's window ends
	Limited    int64         `json:"limited,omitempty"`    // 429s seen
	Remaining  int           `json:"remaining,omitempty"`  // what the API last said was left
}

// Store keeps budgets' states. Update must run fn on the key's current
// state (the zero State for a new key) and store what it leaves,
// atomically: no two Updates of one key, on any replica, interleave. The
// conformance suite budgettest is the contract.
type Store interface {
	Update(ctx context.Context, key string, fn func(s *State)) error
}

// Memory is a [Store] in one process. The zero value is ready to use.
type Memory struct {
	mu sync.Mutex
	m  map[string]State
}

// Update implements [Store].
func (m *Memory) Update(_ context.Context, key string, fn func(s *State)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]State{}
	}
	s := m.m[key]
	fn(&s)
	m.m[key] = s
	return nil
}

// Budget paces the requests of each credential (a key) under a policy.
type Budget struct {
	store  Store
	policy Policy
	name   string
	rec    metric.Recorder
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error

	mu    sync.Mutex
	stats Stats
}

// Stats are a budget's counters in this process.
type Stats struct {
	Reserved int64         // slots reserved
	Waited   time.Duration // the waits they asked for, summed
	Limited  int64         // 429 answers seen
	Errors   int64         // store failures
}

// Option configures a [Budget].
type Option func(*Budget)

// WithName names the budget in its metrics (their source label).
// Defaults to "budget".
func WithName(name string) Option { return func(b *Budget) { b.name = name } }

// WithMetrics sets the recorder of the budget's requests, waits, 429s
// and what the API says is left. Defaults to none.
func WithMetrics(r metric.Recorder) Option { return func(b *Budget) { b.rec = r } }

// WithClock sets the clock (tests). Defaults to time.Now; replicas
// sharing a store must have clocks that agree to well within the rate's
// spacing (NTP does).
func WithClock(now func() time.Time, sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(b *Budget) { b.now, b.sleep = now, sleep }
}

// New returns a budget of policy kept in store. It panics on an invalid
// policy or a nil store.
func New(store Store, policy Policy, opts ...Option) *Budget {
	if store == nil {
		panic("budget: New with a nil Store")
	}
	if err := policy.Validate(); err != nil {
		panic(err.Error())
	}
	if policy.Burst == 0 {
		policy.Burst = 1
	}
	b := &Budget{store: store, policy: policy, name: "budget", rec: metric.Discard{}, now: time.Now, sleep: sleep}
	for _, o := range opts {
		o(b)
	}
	return b
}

// ErrStore wraps a store's failure to reserve or learn.
var ErrStore = errors.New("budget: store failed")

// Reserve takes the key's next slot and returns how long to wait for it
// (0: now). The slot is spent whether or not the caller uses it.
func (b *Budget) Reserve(ctx context.Context, key string) (time.Duration, error) {
	now := b.now()
	var slot time.Time
	err := b.store.Update(ctx, key, func(s *State) { slot = b.policy.reserve(s, now) })
	if err != nil {
		b.count(func(st *Stats) { st.Errors++ })
		return 0, fmt.Errorf("%w: %w", ErrStore, err)
	}
	wait := max(slot.Sub(now), 0)
	b.count(func(st *Stats) { st.Reserved++; st.Waited += wait })
	b.rec.Count(metric.BudgetRequests, b.name, "", 1)
	b.rec.Observe(metric.BudgetWait, b.name, wait)
	return wait, nil
}

// Wait reserves the key's next slot and sleeps until it, or until ctx is
// done.
func (b *Budget) Wait(ctx context.Context, key string) error {
	d, err := b.Reserve(ctx, key)
	if err != nil {
		return err
	}
	return b.sleep(ctx, d)
}

// Learn teaches the key's budget what a response said (see [Parse]).
func (b *Budget) Learn(ctx context.Context, key string, l Limits) error {
	if !l.Known() {
		return nil
	}
	now := b.now()
	if l.Limited {
		b.count(func(st *Stats) { st.Limited++ })
		b.rec.Count(metric.BudgetLimited, b.name, "", 1)
	}
	if l.Remaining >= 0 {
		b.rec.Gauge(metric.BudgetRemaining, b.name, float64(l.Remaining))
	}
	if err := b.store.Update(ctx, key, func(s *State) { b.policy.learn(s, l, now) }); err != nil {
		b.count(func(st *Stats) { st.Errors++ })
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	return nil
}

// Stats returns the budget's counters in this process.
func (b *Budget) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

func (b *Budget) count(fn func(*Stats)) {
	b.mu.Lock()
	fn(&b.stats)
	b.mu.Unlock()
}

// reserve takes the next slot of s at now and returns it.
func (p Policy) reserve(s *State, now time.Time) time.Time {
	if p.Burst == 0 {
		p.Burst = 1
	}
	t := p.interval()
	if s.PaceUntil.After(now) {
		t = max(t, s.Pace)
	}
	base := latest(s.Next, now, s.Blocked)
	spent := false
	if p.Quota > 0 {
		if !s.QuotaReset.After(base) { // no window yet, or it ended: one begins with this request
			s.Used, s.QuotaReset = 0, base.Add(p.QuotaPer)
		}
		if s.Used >= p.Quota { // spent: the slot is the first of the next window
			base, spent = s.QuotaReset, true
			s.Used, s.QuotaReset = 0, base.Add(p.QuotaPer)
		}
		s.Used++
	}
	slot := base
	if !spent { // a burst may go ahead of the pace, never of a reset
		slot = latest(now, s.Blocked, base.Add(-time.Duration(p.Burst-1)*t))
	}
	s.Next = base.Add(t)
	return slot
}

// learn applies what the API said.
func (p Policy) learn(s *State, l Limits, now time.Time) {
	if l.Limited {
		s.Limited++
	}
	if l.RetryAfter > 0 {
		s.Blocked = latest(s.Blocked, now.Add(l.RetryAfter))
	}
	if l.Remaining >= 0 && !l.Reset.IsZero() && l.Reset.After(now) {
		s.Remaining = l.Remaining
		if l.Remaining == 0 {
			s.Blocked = latest(s.Blocked, l.Reset)
			return
		}
		// Spread what is left over what remains of the window. A day's
		// quota said to be far off is the quota's business, not the
		// pace's: only windows under an hour pace.
		if l.Reset.Sub(now) <= time.Hour {
			s.Pace, s.PaceUntil = l.Reset.Sub(now)/time.Duration(l.Remaining), l.Reset
		} else if p.Quota > 0 {
			s.Used, s.QuotaReset = max(s.Used, p.Quota-l.Remaining), l.Reset
		}
	}
}

func latest(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
