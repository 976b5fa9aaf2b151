package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fleet"
	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/poller"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// sink stores events once per key, as a stream does, and counts them.
type sink struct {
	mu   sync.Mutex
	seen map[string]event.Event
}

func (s *sink) Put(_ context.Context, e event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen == nil {
		s.seen = map[string]event.Event{}
	}
	if _, ok := s.seen[e.Key()]; ok {
		return event.ErrDuplicate
	}
	s.seen[e.Key()] = e
	return nil
}

func (s *sink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// api serves each connection its items "<id>-<n>", n from 0, a page of
// up to 2 after the cursor (an item count); it counts polls per
// connection.
type api struct {
	items int
	mu    sync.Mutex
	polls map[string]int
	fail  func(c fleet.Connection) error // an error for the connection, or nil
}

func (a *api) poll(_ context.Context, c fleet.Connection, cursor string) (poller.Page, error) {
	a.mu.Lock()
	if a.polls == nil {
		a.polls = map[string]int{}
	}
	a.polls[c.ID]++
	fail := a.fail
	a.mu.Unlock()
	if fail != nil {
		if err := fail(c); err != nil {
			return poller.Page{}, err
		}
	}
	n, _ := strconv.Atoi(cursor)
	var pg poller.Page
	for i := n; i < min(n+2, a.items); i++ {
		pg.Events = append(pg.Events, event.Event{ID: fmt.Sprintf("%s-%d", c.ID, i), Payload: []byte("{}")})
	}
	pg.Next = strconv.Itoa(n + len(pg.Events))
	pg.More = n+len(pg.Events) < a.items
	return pg, nil
}

func (a *api) pollsOf(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.polls[id]
}

func run(t *testing.T, f *fleet.Fleet, s event.Sink) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, s) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30 s: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func addAll(t *testing.T, f *fleet.Fleet, n int, interval time.Duration) {
	t.Helper()
	for i := range n {
		if err := f.Add(context.Background(), fleet.Connection{ID: fmt.Sprintf("acct-%03d", i), Source: "api", Interval: interval, Credential: "tok"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEveryConnectionsItemsArriveWithItsConnection(t *testing.T) {
	a := &api{items: 5}
	f := fleet.New("fleet", &fleet.Memory{}, fleet.WithScan(10*time.Millisecond), fleet.WithLogger(quiet), fleet.WithWorkers(8))
	f.Source("api", a.poll)
	addAll(t, f, 50, 50*time.Millisecond)
	var s sink
	run(t, f, &s)
	eventually(t, "250 events stored", func() bool { return s.len() == 250 })
	s.mu.Lock()
	for _, e := range s.seen {
		if want := e.ID[:len("acct-000")]; e.Meta[fleet.MetaConnection] != want || e.Source != "api" || e.Via != event.Poll {
			t.Fatalf("event %s: source %q via %v, connection %q", e.ID, e.Source, e.Via, e.Meta[fleet.MetaConnection])
		}
	}
	s.mu.Unlock()
	eventually(t, "every cursor saved at the end", func() bool {
		list, _ := f.List(context.Background(), fleet.Filter{Limit: 1000})
		for _, c := range list {
			if c.Cursor != "5" || c.Events != 5 {
				return false
			}
		}
		return len(list) == 50
	})
}

func TestConnectionsAddedAtOnceAreSpreadOverTheirInterval(t *testing.T) {
	store := &fleet.Memory{}
	f := fleet.New("fleet", store)
	addAll(t, f, 1000, time.Hour)
	list, _ := f.List(context.Background(), fleet.Filter{Limit: 1000})
	var buckets [10]int
	for _, c := range list {
		d := time.Until(c.NextDue)
		if d < -time.Minute || d > time.Hour {
			t.Fatalf("%s due in %v", c.ID, d)
		}
		buckets[min(9, max(0, int(d/(6*time.Minute))))]++
	}
	for i, n := range buckets {
		if n < 50 || n > 150 { // 100 expected in each tenth; 50–150 fails about never when uniform
			t.Fatalf("tenth %d of the interval holds %d of 1000 first polls: %v", i, n, buckets)
		}
	}
}

func TestRefusedCredentialPausesOnceAndNewCredentialResumes(t *testing.T) {
	a := &api{items: 1}
	a.fail = func(c fleet.Connection) error {
		if c.ID == "acct-001" && c.Credential == "tok" {
			return fmt.Errorf("list: %w", &poller.StatusError{Code: 401, Body: "token revoked"})
		}
		if c.ID == "acct-002" && c.Credential == "tok" {
			return fmt.Errorf("refresh: %w", fleet.ErrUnauthorized)
		}
		return nil
	}
	var hooks sync.Map
	var calls atomic.Int64
	f := fleet.New("fleet", &fleet.Memory{}, fleet.WithScan(5*time.Millisecond), fleet.WithLogger(quiet),
		fleet.OnPause(func(_ context.Context, c fleet.Connection) {
			calls.Add(1)
			n, _ := hooks.LoadOrStore(c.ID, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
			if c.Paused != fleet.PausedBySystem || c.Reason == "" {
				t.Errorf("hook got %+v", c)
			}
		}))
	f.Source("api", a.poll)
	addAll(t, f, 4, 20*time.Millisecond)
	var s sink
	run(t, f, &s)
	ctx := context.Background()
	for _, id := range []string{"acct-001", "acct-002"} {
		eventually(t, id+" paused", func() bool { c, _ := f.Get(ctx, id); return c.Paused == fleet.PausedBySystem })
	}
	before := a.pollsOf("acct-000")
	eventually(t, "the others polled on", func() bool { return a.pollsOf("acct-000") >= before+5 })
	for _, id := range []string{"acct-001", "acct-002"} {
		if n := a.pollsOf(id); n != 1 {
			t.Errorf("%s polled %d times; a refused credential pauses within one poll", id, n)
		}
		if n, _ := hooks.Load(id); n == nil || n.(*atomic.Int64).Load() != 1 {
			t.Errorf("%s: hook not called once", id)
		}
	}
	c, _ := f.Get(ctx, "acct-001")
	if c.Reason == "" || c.LastError == "" {
		t.Errorf("paused without a reason: %+v", c)
	}

	// A person pauses acct-002 too; new credentials resume acct-001 only.
	if err := f.Pause(ctx, "acct-002", "ops@example.com", "customer offboarding"); err != nil {
		t.Fatal(err)
	}
	cred := "tok-2"
	for _, id := range []string{"acct-001", "acct-002"} {
		if _, err := f.Update(ctx, id, fleet.Change{Credential: &cred}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "acct-001's item stored with new credentials", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		_, ok := s.seen[event.Key("api", "acct-001-0")]
		return ok
	})
	before = a.pollsOf("acct-000")
	eventually(t, "the others polled on", func() bool { return a.pollsOf("acct-000") >= before+5 })
	if c, _ := f.Get(ctx, "acct-002"); c.Paused != "ops@example.com" || a.pollsOf("acct-002") != 1 {
		t.Fatalf("a person's pause undone by a credential refresh: %+v, %d polls", c, a.pollsOf("acct-002"))
	}
	if calls.Load() != 2 {
		t.Fatalf("hook called %d times, want 2", calls.Load())
	}
	if err := f.Resume(ctx, "acct-002"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "acct-002 polled after Resume", func() bool { return a.pollsOf("acct-002") > 1 })
}

func TestFailingConnectionBacksOffAloneAndRetryAfterHolds(t *testing.T) {
	a := &api{items: 0}
	a.fail = func(c fleet.Connection) error {
		switch c.ID {
		case "acct-000":
			return errors.New("502 from the API")
		case "acct-001":
			return event.RetryAfter(time.Hour, errors.New("429"))
		}
		return nil
	}
	f := fleet.New("fleet", &fleet.Memory{}, fleet.WithScan(5*time.Millisecond), fleet.WithLogger(quiet),
		fleet.WithBackoff(20*time.Millisecond, time.Hour))
	f.Source("api", a.poll)
	addAll(t, f, 3, 10*time.Millisecond)
	run(t, f, &sink{})
	eventually(t, "the healthy connection polled 60 times", func() bool { return a.pollsOf("acct-002") >= 60 })
	// Backoff doubles from 20 ms: 60 polls of 10 ms take ~0.6 s, in which
	// the failing one makes at most ~6 tries.
	c, _ := f.Get(context.Background(), "acct-000")
	// The API counts a poll when it starts, the store when it ends: one
	// may be in flight between the two reads.
	if n := a.pollsOf("acct-000"); n < 2 || n > 20 || (c.Errors != n && c.Errors != n-1) || c.LastError == "" {
		t.Fatalf("failing connection: %d polls, %+v", n, c)
	}
	if n := a.pollsOf("acct-001"); n != 1 {
		t.Fatalf("a Retry-After of an hour polled again: %d polls", n)
	}
	if c, _ := f.Get(context.Background(), "acct-001"); time.Until(c.NextDue) < 14*time.Minute {
		t.Fatalf("Retry-After of an hour (capped at 15 minutes): next due in %v", time.Until(c.NextDue))
	}
}

func TestLostClaimWritesNoCursor(t *testing.T) {
	store := &fleet.Memory{}
	entered, release := make(chan struct{}), make(chan struct{})
	poll := func(ctx context.Context, c fleet.Connection, cursor string) (poller.Page, error) {
		close(entered)
		<-release
		return poller.Page{Events: []event.Event{{ID: "late", Payload: []byte("{}")}}, Next: "moved"}, nil
	}
	f := fleet.New("fleet", store, fleet.WithScan(5*time.Millisecond), fleet.WithLogger(quiet), fleet.WithLease(300*time.Millisecond))
	f.Source("api", poll)
	ctx := context.Background()
	if err := store.Add(ctx, fleet.Connection{ID: "a", Source: "api", Cursor: "start"}, 0); err != nil {
		t.Fatal(err)
	}
	run(t, f, &sink{})
	<-entered
	if err := f.Pause(ctx, "a", "ops", "mid-poll"); err != nil {
		t.Fatal(err)
	}
	close(release)
	eventually(t, "the lost claim counted", func() bool { return f.Stats().Lost == 1 })
	if c, _ := f.Get(ctx, "a"); c.Cursor != "start" || c.Paused != "ops" || c.Polls != 0 {
		t.Fatalf("a lost claim wrote: %+v", c)
	}
}

func TestStopReleasesClaimsDueAtOnce(t *testing.T) {
	store := &fleet.Memory{}
	entered := make(chan struct{})
	var once sync.Once
	f := fleet.New("fleet", store, fleet.WithScan(5*time.Millisecond), fleet.WithLogger(quiet))
	f.Source("api", func(ctx context.Context, c fleet.Connection, cursor string) (poller.Page, error) {
		once.Do(func() { close(entered) })
		<-ctx.Done()
		return poller.Page{}, ctx.Err()
	})
	ctx := context.Background()
	if err := store.Add(ctx, fleet.Connection{ID: "a", Source: "api", Interval: time.Hour}, 0); err != nil {
		t.Fatal(err)
	}
	stop := run(t, f, &sink{})
	<-entered
	stop()
	cs, _, err := store.Claim(ctx, "other", 1, time.Minute)
	if err != nil || len(cs) != 1 {
		t.Fatalf("after Run returned, the connection is not claimable at once: %v, %v", cs, err)
	}
	if c := cs[0]; c.Polls != 0 || c.Errors != 0 {
		t.Fatalf("a stopped poll counted: %+v", c)
	}
}

func TestUnknownSourceBacksOff(t *testing.T) {
	store := &fleet.Memory{}
	f := fleet.New("fleet", store, fleet.WithScan(5*time.Millisecond), fleet.WithLogger(quiet))
	ctx := context.Background()
	if err := store.Add(ctx, fleet.Connection{ID: "a", Source: "nowhere"}, 0); err != nil {
		t.Fatal(err)
	}
	run(t, f, &sink{})
	eventually(t, "an error recorded", func() bool { c, _ := f.Get(ctx, "a"); return c.Errors > 0 })
	if c, _ := f.Get(ctx, "a"); c.Paused != "" || c.LastError == "" {
		t.Fatalf("%+v", c)
	}
}

func TestNonsenseOptionsPanicWithTheirName(t *testing.T) {
	for name, fn := range map[string]func(){
		"WithWorkers": func() { fleet.WithWorkers(-1) },
		"WithLease":   func() { fleet.WithLease(-time.Second)(nil) },
		"WithJitter":  func() { fleet.WithJitter(1) },
		"WithBackoff": func() { fleet.WithBackoff(time.Hour, time.Second) },
		"New":         func() { fleet.New("x", nil) },
		"Lookback":    func() { fleet.Lookback(-time.Second, nil) },
		"Source(nil)": func() { fleet.New("x", &fleet.Memory{}).Source("s", nil) },
	} {
		func() {
			defer func() {
				if r := recover(); r == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

// countRecorder counts what a fleet reports, by name and reason.
type countRecorder struct {
	mu sync.Mutex
	n  map[string]int64
}

func (r *countRecorder) Count(name, source, reason string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n[name+"|"+reason] += n
}
func (r *countRecorder) Gauge(string, string, float64)         {}
func (r *countRecorder) Observe(string, string, time.Duration) {}

// A pause is counted as a pause (intake_fleet_paused_total, no reason),
// not as a poll error with a reason that counter does not carry.
func TestPauseIsCountedAsAPause(t *testing.T) {
	rec := &countRecorder{n: map[string]int64{}}
	store := &fleet.Memory{}
	f := fleet.New("fleet", store, fleet.WithScan(5*time.Millisecond), fleet.WithLogger(quiet), fleet.WithMetrics(rec))
	f.Source("api", func(context.Context, fleet.Connection, string) (poller.Page, error) {
		return poller.Page{}, &poller.StatusError{Code: 401}
	})
	if err := store.Add(context.Background(), fleet.Connection{ID: "acct-000", Source: "api"}, 0); err != nil {
		t.Fatal(err)
	}
	run(t, f, &sink{})
	eventually(t, "paused", func() bool { c, _ := f.Get(context.Background(), "acct-000"); return c.Paused != "" })
	eventually(t, "counted", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.n[metric.FleetPaused+"|"] == 1 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for k := range rec.n {
		if strings.HasSuffix(k, "|paused") {
			t.Fatalf("counted %q: a reason on a counter without one", k)
		}
	}
}
