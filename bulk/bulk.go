// Package bulk replays or discards every event a queue holds that matches
// a filter, as a job: in the background, with progress, at thousands of
// events a second, in bounded memory.
//
// A job reads the queue page by page in the order of arrival and acts on
// each match as [dedupe.Inspector.Replay] or Discard would. Its safety
// comes from the queue's own actions, not from a lock:
//
//   - Replay changes a dead event back to queued in one statement, and
//     changes nothing when the event is not dead; an event is therefore
//     replayed once per death, however many jobs (on however many
//     replicas, by however many operators) reach it at once.
//   - An event a job has acted on no longer matches it (it is queued, or
//     gone), so a job that stopped (a restart, an outage, a cancel) is
//     resumed by starting it again: it acts on what is left.
//   - A job skips an event that died after the job started: an event it
//     replayed and that died again is not replayed again by the same job.
//
// [Jobs] runs jobs in a process and keeps their progress for the console
// and the CLI; starting a job that is running joins it.
package bulk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// Action is what a job does to each event it matches.
type Action string

const (
	// Replay puts a dead event back in the queue, attempts reset.
	Replay Action = "replay"
	// Discard forgets an event: a later arrival of its key is a new event.
	Discard Action = "discard"
)

// Filter chooses the events a job acts on. Every field that is set must
// match; the zero Filter matches every dead event.
type Filter struct {
	// State is dedupe.Dead (the default) or dedupe.Queued (discard only:
	// replaying a queued event changes nothing).
	State  dedupe.RecordState `json:"state,omitzero"`
	Source string             `json:"source,omitempty"`
	Type   string             `json:"type,omitempty"`
	// Tenant is the tenant a per-tenant webhook stamped on the event
	// (event.MetaTenant).
	Tenant string `json:"tenant,omitempty"`
	// Error is text the dead event's last error contains.
	Error string `json:"error,omitempty"`
	// Class is the class of a dead event's last error: "transient" (its
	// attempts ran out) or "permanent" (see event.Class).
	Class string `json:"class,omitempty"`
	// Since and Until bound when a dead event died (its last attempt) or,
	// for a queued one, when it happened (its event time, else its
	// receipt): Since ≤ t < Until. Zero: unbounded.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
}

// Job is an action over a filter.
type Job struct {
	Action Action `json:"action"`
	Filter Filter `json:"filter"`
}

// ErrInvalid is returned, wrapped, for a job that cannot run: an unknown
// action, a state it cannot act on, or Since after Until.
var ErrInvalid = errors.New("bulk: invalid job")

// Validate returns an error wrapping [ErrInvalid] that says what is wrong
// with j, or nil.
func (j Job) Validate() error {
	switch j.Action {
	case Replay, Discard:
	default:
		return fmt.Errorf("%w: action %q: replay or discard", ErrInvalid, j.Action)
	}
	switch j.Filter.State {
	case 0, dedupe.Dead:
	case dedupe.Queued:
		if j.Action == Replay {
			return fmt.Errorf("%w: replay acts on dead events; a queued event is delivered already", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: state %d: dead or queued", ErrInvalid, j.Filter.State)
	}
	if j.Filter.Class != "" {
		var c event.Class
		if err := c.UnmarshalText([]byte(j.Filter.Class)); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
	}
	if !j.Filter.Since.IsZero() && !j.Filter.Until.IsZero() && !j.Filter.Since.Before(j.Filter.Until) {
		return fmt.Errorf("%w: since %s is not before until %s", ErrInvalid, j.Filter.Since.Format(time.RFC3339), j.Filter.Until.Format(time.RFC3339))
	}
	return nil
}

// normal is j with its defaults filled in.
func (j Job) normal() Job {
	if j.Filter.State == 0 {
		j.Filter.State = dedupe.Dead
	}
	j.Filter.Since, j.Filter.Until = j.Filter.Since.UTC(), j.Filter.Until.UTC()
	return j
}

// ID names the job: the same action and filter have the same ID, on every
// replica.
func (j Job) ID() string {
	b, _ := json.Marshal(j.normal())
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// String describes the job in words, e.g. "replay dead events of source
// stripe, type invoice.paid".
func (j Job) String() string {
	j = j.normal()
	f := j.Filter
	var parts []string
	add := func(name, v string) {
		if v != "" {
			parts = append(parts, name+" "+v)
		}
	}
	add("source", f.Source)
	add("type", f.Type)
	add("tenant", f.Tenant)
	if f.Error != "" {
		parts = append(parts, fmt.Sprintf("error containing %q", f.Error))
	}
	add("class", f.Class)
	if !f.Since.IsZero() {
		parts = append(parts, "since "+f.Since.Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		parts = append(parts, "until "+f.Until.Format(time.RFC3339))
	}
	s := fmt.Sprintf("%s %s events", j.Action, f.State)
	if len(parts) > 0 {
		s += " of " + strings.Join(parts, ", ")
	}
	return s
}

// Match reports whether r is an event the filter chooses.
func (f Filter) Match(r dedupe.Record) bool {
	state := f.State
	if state == 0 {
		state = dedupe.Dead
	}
	if r.State != state || (f.Source != "" && r.Event.Source != f.Source) || (f.Type != "" && r.Event.Type != f.Type) {
		return false
	}
	if f.Tenant != "" && r.Event.Meta[event.MetaTenant] != f.Tenant {
		return false
	}
	if f.Error != "" && (r.Failure == nil || !strings.Contains(r.Failure.Err, f.Error)) {
		return false
	}
	if f.Class != "" && (r.Failure == nil || r.Failure.Class.String() != f.Class) {
		return false
	}
	if f.Since.IsZero() && f.Until.IsZero() {
		return true
	}
	t := when(r)
	return (f.Since.IsZero() || !t.Before(f.Since)) && (f.Until.IsZero() || t.Before(f.Until))
}

// when is the time a filter's bounds apply to: when a dead event died,
// or when a queued one happened.
func when(r dedupe.Record) time.Time {
	switch {
	case r.Failure != nil && !r.Failure.Last.IsZero():
		return r.Failure.Last
	case !r.Event.Time.IsZero():
		return r.Event.Time
	}
	return r.Event.Received
}

// Target is what a job reads and acts on: a durable queue (every backend's
// [dedupe.Inspector]) or a stream.
type Target interface {
	List(ctx context.Context, f dedupe.Filter) ([]dedupe.Record, error)
	Replay(ctx context.Context, key string) error
	Discard(ctx context.Context, key string) error
}

// Progress is what a job has done so far.
type Progress struct {
	ID      string    `json:"id"`
	Job     Job       `json:"job"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"` // zero while it runs
	// Scanned counts the events read; Matched those the filter chose;
	// Done those acted on; Gone those that were no longer there to act
	// on (handled, discarded or replayed elsewhere).
	Scanned int64 `json:"scanned"`
	Matched int64 `json:"matched"`
	Done    int64 `json:"done"`
	Gone    int64 `json:"gone"`
	// Err is why the job stopped before the end ("" when it ran to the
	// end): start it again to go on.
	Err string `json:"error,omitempty"`
}

// Running reports whether the job has not ended.
func (p Progress) Running() bool { return p.Ended.IsZero() }

// Options tune [Run]. The zero Options are the defaults.
type Options struct {
	// Workers is how many actions are under way at once. Default 8.
	Workers int
	// Page is how many events each read of the queue returns. Default 500.
	Page int
	// Report is called with the progress after each page and at the end.
	Report func(Progress)
}

// Run runs j against t to the end, or until ctx is done or an action fails
// with anything but [dedupe.ErrNotFound], and returns its progress. An
// error of Run is also in Progress.Err.
func Run(ctx context.Context, t Target, j Job, o Options) (Progress, error) {
	p := Progress{ID: j.ID(), Job: j.normal(), Started: time.Now().UTC()}
	err := run(ctx, t, p.Job, o, &p, func(q Progress) {
		if o.Report != nil {
			o.Report(q)
		}
	})
	p.Ended = time.Now().UTC()
	if err != nil {
		p.Err = err.Error()
	}
	if o.Report != nil {
		o.Report(p)
	}
	return p, err
}

func run(ctx context.Context, t Target, j Job, o Options, p *Progress, report func(Progress)) error {
	if err := j.Validate(); err != nil {
		return err
	}
	workers, size := o.Workers, o.Page
	if workers <= 0 {
		workers = 8
	}
	if size <= 0 {
		size = 500
	}
	act := actor(t, j.Action)
	var done, gone atomic.Int64
	f := dedupe.Filter{State: j.Filter.State, Source: j.Filter.Source, Type: j.Filter.Type, Limit: size}
	keys := make(chan []string)
	for {
		page, err := t.List(ctx, f)
		if err != nil {
			return fmt.Errorf("bulk: list after seq %d: %w", f.After, err)
		}
		p.Scanned += int64(len(page))
		var match []string
		for _, r := range page {
			// An event that died after the job began is a new death: one this
			// job may have replayed already.
			if j.Filter.Match(r) && !(r.Failure != nil && r.Failure.Last.After(p.Started)) {
				match = append(match, r.Key)
			}
		}
		p.Matched += int64(len(match))
		var (
			wg     sync.WaitGroup
			once   sync.Once
			first  error
			failed atomic.Bool
		)
		chunks := chunk(match, act.size)
		for range min(workers, len(chunks)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ks := range keys {
					if failed.Load() {
						continue // drain: the job stops at this page
					}
					n, err := act.do(ctx, ks)
					done.Add(int64(n))
					if err != nil {
						once.Do(func() { first = fmt.Errorf("bulk: %s: %w", j.Action, err) })
						failed.Store(true)
						continue
					}
					gone.Add(int64(len(ks) - n))
				}
			}()
		}
	send:
		for _, ks := range chunks {
			select {
			case keys <- ks:
			case <-ctx.Done():
				break send
			}
		}
		close(keys)
		wg.Wait()
		keys = make(chan []string)
		p.Done, p.Gone = done.Load(), gone.Load()
		// A stop comes first: an action that failed as the context ended
		// failed because of it, not because of the store.
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("bulk: stopped: %w", err)
		}
		if first != nil {
			return first
		}
		report(*p)
		if len(page) < size {
			return nil
		}
		f.After = page[len(page)-1].Seq
	}
}

// act acts on a few keys and returns how many it acted on; size is how
// many it takes at once.
type act struct {
	do   func(ctx context.Context, keys []string) (int, error)
	size int
}

// many is a target that acts on many keys in one round trip
// ([dedupe.BatchInspector]: Postgres, SQLite, the stream).
type many interface {
	ReplayMany(ctx context.Context, keys []string) (int, error)
	DiscardMany(ctx context.Context, keys []string) (int, error)
}

// actor is j's action on t: on 100 keys at once when t has ReplayMany and
// DiscardMany, else on one, where ErrNotFound means gone.
func actor(t Target, a Action) act {
	if m, ok := t.(many); ok {
		if a == Discard {
			return act{m.DiscardMany, 100}
		}
		return act{m.ReplayMany, 100}
	}
	one := t.Replay
	if a == Discard {
		one = t.Discard
	}
	return act{func(ctx context.Context, keys []string) (int, error) {
		if err := one(ctx, keys[0]); err != nil {
			if errors.Is(err, dedupe.ErrNotFound) {
				return 0, nil
			}
			return 0, fmt.Errorf("%q: %w", keys[0], err)
		}
		return 1, nil
	}, 1}
}

func chunk(keys []string, size int) [][]string {
	var out [][]string
	for len(keys) > 0 {
		n := min(size, len(keys))
		out = append(out, keys[:n])
		keys = keys[n:]
	}
	return out
}

// Jobs runs jobs in the background and keeps their progress: the running
// ones, and the last 32 that ended. The zero Jobs is not usable; create
// it with [NewJobs].
type Jobs struct {
	target Target
	opts   Options
	ctx    context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	jobs   map[string]*running
	order  []string // IDs, oldest first
}

type running struct {
	mu     sync.Mutex
	p      Progress
	cancel context.CancelFunc
	done   chan struct{}
}

// keep is how many ended jobs Jobs remembers.
const keep = 32

// NewJobs returns a Jobs that runs jobs against t with o (o.Report, if
// set, is called for every job's progress).
func NewJobs(t Target, o Options) *Jobs {
	ctx, stop := context.WithCancel(context.Background())
	return &Jobs{target: t, opts: o, ctx: ctx, stop: stop, jobs: map[string]*running{}}
}

// Start starts j in the background and returns its progress so far. If
// the same job (same [Job.ID]) is running, Start joins it: it returns the
// running job's progress and starts nothing. It returns an error wrapping
// [ErrInvalid] for a job that cannot run.
func (js *Jobs) Start(j Job) (Progress, error) {
	if err := j.Validate(); err != nil {
		return Progress{}, err
	}
	id := j.ID()
	js.mu.Lock()
	defer js.mu.Unlock()
	if r, ok := js.jobs[id]; ok && r.progress().Running() {
		return r.progress(), nil
	}
	if err := js.ctx.Err(); err != nil {
		return Progress{}, fmt.Errorf("bulk: jobs closed: %w", err)
	}
	ctx, cancel := context.WithCancel(js.ctx)
	r := &running{p: Progress{ID: id, Job: j.normal(), Started: time.Now().UTC()}, cancel: cancel, done: make(chan struct{})}
	js.jobs[id] = r
	js.order = append(js.order, id)
	js.forget()
	o := js.opts
	o.Report = func(p Progress) {
		r.mu.Lock()
		r.p = p
		r.mu.Unlock()
		if js.opts.Report != nil {
			js.opts.Report(p)
		}
	}
	js.wg.Add(1)
	go func() {
		defer js.wg.Done()
		defer close(r.done)
		defer cancel()
		_, _ = Run(ctx, js.target, j, o)
	}()
	return r.progress(), nil
}

// forget drops the oldest ended jobs beyond keep. js.mu must be held.
func (js *Jobs) forget() {
	var ended int
	for _, id := range js.order {
		if !js.jobs[id].progress().Running() {
			ended++
		}
	}
	live := js.order[:0]
	for _, id := range js.order {
		if ended > keep && !js.jobs[id].progress().Running() {
			delete(js.jobs, id)
			ended--
			continue
		}
		live = append(live, id)
	}
	js.order = live
}

func (r *running) progress() Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.p
}

// Get returns the progress of the job with id, and whether Jobs knows it.
func (js *Jobs) Get(id string) (Progress, bool) {
	js.mu.Lock()
	r, ok := js.jobs[id]
	js.mu.Unlock()
	if !ok {
		return Progress{}, false
	}
	return r.progress(), true
}

// All returns the progress of every job Jobs knows, newest first.
func (js *Jobs) All() []Progress {
	js.mu.Lock()
	defer js.mu.Unlock()
	out := make([]Progress, 0, len(js.order))
	for i := len(js.order) - 1; i >= 0; i-- {
		out = append(out, js.jobs[js.order[i]].progress())
	}
	return out
}

// Wait waits until the job with id ends or ctx is done, and returns its
// progress.
func (js *Jobs) Wait(ctx context.Context, id string) (Progress, error) {
	js.mu.Lock()
	r, ok := js.jobs[id]
	js.mu.Unlock()
	if !ok {
		return Progress{}, fmt.Errorf("bulk: job %q: %w", id, dedupe.ErrNotFound)
	}
	select {
	case <-r.done:
		return r.progress(), nil
	case <-ctx.Done():
		return r.progress(), ctx.Err()
	}
}

// Cancel stops the job with id at its next event; it reports whether the
// job was running.
func (js *Jobs) Cancel(id string) bool {
	js.mu.Lock()
	r, ok := js.jobs[id]
	js.mu.Unlock()
	if !ok || !r.progress().Running() {
		return false
	}
	r.cancel()
	return true
}

// Close stops every running job and waits for them to end.
func (js *Jobs) Close() {
	js.stop()
	js.wg.Wait()
}
