package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
	"github.com/intakehq/intake/internal/testenv"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/webhook"
)

const secret = "It's a Secret to Everybody"

// replica is one process of a service: a stream on the shared database,
// with a webhook endpoint and a poller.
type replica struct {
	stream *intake.Stream
	srv    *httptest.Server
	poll   *poller.Poller
}

// TestReplicasHandleEachEventOnce runs three streams sharing one Postgres.
// 10,000 unique events arrive, 30% of them twice, spread across replicas
// and across the webhook and poll paths; every unique event must be
// handled exactly once in total.
func TestReplicasHandleEachEventOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("13,000 requests")
	}
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	const unique, replicas = 10_000, 3

	// Plan: event i goes first to replica i%3; 30% also arrive at the next
	// replica by the other path.
	type delivery struct {
		id  string
		via event.Via
	}
	plan := make([][]delivery, replicas)
	for i := range unique {
		id := fmt.Sprintf("evt_%05d", i)
		first := event.Webhook
		if i%4 == 0 {
			first = event.Poll
		}
		plan[i%replicas] = append(plan[i%replicas], delivery{id, first})
		if i%10 < 3 {
			other := event.Poll
			if first == event.Poll {
				other = event.Webhook
			}
			plan[(i+1)%replicas] = append(plan[(i+1)%replicas], delivery{id, other})
		}
	}

	var handled intaketest.Counter
	ctx, cancel := context.WithCancel(context.Background())
	var runs sync.WaitGroup
	var reps []*replica
	for r := range replicas {
		var polled []event.Event
		for _, d := range plan[r] {
			if d.via == event.Poll {
				polled = append(polled, event.Event{ID: d.id, Type: "t", Payload: []byte(d.id)})
			}
		}
		s := intake.New(intake.WithQueue(newBackend(t, pool, prefix)), intake.WithLogger(quiet), intake.WithQueueSize(2000))
		// The guard off: GitHub's default keys an event by its body, and
		// this test dedupes by id across the two paths.
		hook := webhook.New("provider", webhook.GitHub(secret), webhook.WithLogger(quiet), webhook.WithReplayGuard(nil))
		p := poller.New("provider", intaketest.PageFetch(polled, 100), poller.Every(5*time.Millisecond), poller.WithMaxPages(1000), poller.WithLogger(quiet))
		s.Add(hook, p)
		s.Handle(handled.Handle, intake.WithWorkers(4))
		rep := &replica{stream: s, srv: httptest.NewServer(hook), poll: p}
		defer rep.srv.Close()
		reps = append(reps, rep)
		runs.Add(1)
		go func() {
			defer runs.Done()
			if err := s.Run(ctx); err != nil {
				t.Error(err)
			}
		}()
	}

	// Send the webhooks, 8 at a time per replica.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	var sends sync.WaitGroup
	var failed atomic.Int64
	for r, rep := range reps {
		var ids []string
		for _, d := range plan[r] {
			if d.via == event.Webhook {
				ids = append(ids, d.id)
			}
		}
		work := make(chan string)
		for range 8 {
			sends.Add(1)
			go func() {
				defer sends.Done()
				for id := range work {
					if !sendUntilStored(client, rep.srv.URL, id) {
						failed.Add(1)
					}
				}
			}()
		}
		go func() {
			for _, id := range ids {
				work <- id
			}
			close(work)
		}()
	}
	sends.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d webhooks never stored", n)
	}

	deadline := time.Now().Add(60 * time.Second)
	for {
		if handled.Len() == unique || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let late duplicates show
	cancel()
	runs.Wait()

	counts := handled.Counts()
	if len(counts) != unique {
		t.Fatalf("%d of %d events handled", len(counts), unique)
	}
	for id, n := range counts {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
		}
	}
	var dups int64
	for _, rep := range reps {
		dups += rep.poll.Stats().Duplicates
	}
	t.Logf("10,000 unique events over 3 replicas; poll path saw %d duplicates", dups)
}

// sendUntilStored posts a signed webhook until it is stored (202) or known
// (200), as a provider retries: a 409 (another replica holds it now) is
// tried again, since the holder may still give it up (a full queue
// releases what it claimed) — a sender that stopped at a 409 lost events
// in TestCrashEffectsOnce. The budget is minutes, not a count of tries.
func sendUntilStored(client *http.Client, url, id string) bool {
	return sendUntilStoredAt(client, func() string { return url }, id)
}

// sendUntilStoredOnce posts the webhook once and reports whether it was
// stored or known: a 2xx, the only answer after which a provider stops.
func sendUntilStoredOnce(client *http.Client, url, id string) bool {
	body := []byte(`{"id":"` + id + `"}`)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header = webhook.SignGitHub(secret, id, "push", body)
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusAccepted, http.StatusOK:
		return true
	}
	return false
}

// crashLease is a lease whose Release does nothing, as when a process dies.
type crashLease struct{ poller.Lease }

func (crashLease) Release(context.Context, string) error { return nil }

// TestLeaderFailover runs three pollers of one source, each with its own
// lease holder. Exactly one polls; when it stops (cleanly, or as if it
// crashed), another takes over within one lease period; no two poll at once.
func TestLeaderFailover(t *testing.T) {
	testenv.SkipUnlessLong(t)
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			pool := testPool(t)
			prefix := testPrefix(t, pool)
			// Long enough that a loaded machine does not miss a renewal
			// (renewed every third of it): at 600 ms, two full test runs
			// side by side let a second poller take a lease its holder
			// had not renewed in time.
			const ttl = 2 * time.Second
			var (
				mu        sync.Mutex
				polls     = map[int]int{}
				last      = map[int]time.Time{}
				active    atomic.Int64
				overlap   atomic.Int64
				cancelers []context.CancelFunc
				done      []chan struct{}
			)
			for i := range 3 {
				var lease poller.Lease = newBackend(t, pool, prefix).Lease()
				if crash {
					lease = crashLease{lease}
				}
				p := poller.New("shared-source", poller.FetchFunc(func(ctx context.Context, cursor string) (poller.Page, error) {
					if active.Add(1) > 1 {
						overlap.Add(1)
					}
					defer active.Add(-1)
					mu.Lock()
					polls[i]++
					last[i] = time.Now()
					mu.Unlock()
					time.Sleep(5 * time.Millisecond)
					return poller.Page{}, nil
				}), poller.Every(10*time.Millisecond), poller.WithLease(lease, ttl), poller.WithLogger(quiet))
				ctx, cancel := context.WithCancel(context.Background())
				ch := make(chan struct{})
				go func() {
					defer close(ch)
					_ = p.Run(ctx, event.SinkFunc(func(context.Context, event.Event) error { return nil }))
				}()
				cancelers = append(cancelers, cancel)
				done = append(done, ch)
			}
			defer func() {
				for i, c := range cancelers {
					c()
					<-done[i]
				}
			}()

			time.Sleep(3 * ttl)
			mu.Lock()
			leaders := []int{}
			for i := range polls {
				leaders = append(leaders, i)
			}
			mu.Unlock()
			if len(leaders) != 1 {
				t.Fatalf("%d pollers polled, want 1: %v", len(leaders), polls)
			}
			leader := leaders[0]
			stopped := time.Now()
			cancelers[leader]()
			<-done[leader]

			var next int = -1
			var took time.Duration
			for deadline := time.Now().Add(3 * ttl); time.Now().Before(deadline) && next < 0; time.Sleep(5 * time.Millisecond) {
				mu.Lock()
				for i, at := range last {
					if i != leader && at.After(stopped) {
						next, took = i, at.Sub(stopped)
					}
				}
				mu.Unlock()
			}
			if next < 0 {
				t.Fatal("no poller took over")
			}
			limit := ttl / 3 // a clean stop releases the lease: the next acquire attempt wins
			if crash {
				limit = ttl + ttl/3 // the lease must expire first
			}
			if took > limit+ttl/4 {
				t.Errorf("took over after %v, want within %v", took, limit)
			}
			time.Sleep(2 * ttl)
			if n := overlap.Load(); n > 0 {
				t.Errorf("%d polls ran while another was running", n)
			}
			t.Logf("leader %d stopped; %d took over after %v", leader, next, took.Round(time.Millisecond))
		})
	}
}

// flakyDialer fails every new connection while down is set.
type flakyDialer struct {
	down atomic.Bool
	d    net.Dialer
}

func (f *flakyDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if f.down.Load() {
		return nil, errors.New("connection refused (simulated outage)")
	}
	return f.d.DialContext(ctx, network, addr)
}

// logCounter counts error records per message.
type logCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *logCounter) Write(p []byte) (int, error) {
	var rec struct{ Level, Msg string }
	if json.Unmarshal(p, &rec) == nil && rec.Level == "ERROR" {
		c.mu.Lock()
		c.n[rec.Msg]++
		c.mu.Unlock()
	}
	return len(p), nil
}

// TestOutage stops the database mid-test: webhooks answer 503 with
// Retry-After and nothing is acked, the stream reports not ready within
// one check interval, and each error is logged at most once a second;
// after recovery it is ready again and the same events are accepted and
// handled once.
func TestOutage(t *testing.T) {
	testPool(t) // skip or fail early when there is no server
	cfg, err := pgxpool.ParseConfig(dsn())
	if err != nil {
		t.Fatal(err)
	}
	dialer := &flakyDialer{}
	cfg.ConnConfig.DialFunc = dialer.DialContext
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	prefix := testPrefix(t, pool)

	logs := &logCounter{n: map[string]int{}}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	const check = 200 * time.Millisecond
	s := intake.New(intake.WithQueue(newBackend(t, pool, prefix)), intake.WithLogger(logger), intake.WithHealthInterval(check))
	hook := webhook.New("github", webhook.GitHub(secret), webhook.WithLogger(logger))
	s.Add(hook)
	var handled intaketest.Counter
	s.Handle(handled.Handle)
	srv := httptest.NewServer(hook)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(ctx) }()
	defer func() { cancel(); <-runDone }()

	post := func(id string) *http.Response {
		body := []byte(`{"id":"` + id + `"}`)
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
		req.Header = webhook.SignGitHub(secret, id, "push", body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if !sendUntilStored(http.DefaultClient, srv.URL, "before") {
		t.Fatal("not running")
	}

	if !waitFor(5*time.Second, func() bool { return s.Health().Ready }) {
		t.Fatalf("not ready before the outage: %+v", s.Health())
	}
	dialer.down.Store(true)
	pool.Reset() // drop the open connections: every query now needs a new one
	outage := time.Now()
	for i := range 5 {
		resp := post(fmt.Sprint("during-", i))
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("during the outage: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	// 100 concurrent webhooks during the outage.
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); post(fmt.Sprint("flood-", i)) }()
	}
	wg.Wait()
	if !waitFor(2*check+time.Second, func() bool { return !s.Health().Ready }) {
		t.Fatalf("still ready %v into the outage: %+v", time.Since(outage), s.Health())
	}
	t.Logf("not ready %v into the outage: store %q", time.Since(outage).Round(time.Millisecond), s.Health().Store)
	secs := time.Since(outage).Seconds()
	logs.mu.Lock()
	for msg, n := range logs.n {
		t.Logf("%d × %q in %.1f s of outage", n, msg, secs)
		if float64(n) > 2*(secs+1) {
			t.Errorf("%q logged %d times in %.1f s: more than twice a second", msg, n, secs)
		}
	}
	logs.mu.Unlock()
	for id := range handled.Counts() {
		if id != "before" {
			t.Errorf("%s handled during the outage", id)
		}
	}

	dialer.down.Store(false)
	if !waitFor(2*check+5*time.Second, func() bool { return s.Health().Ready }) {
		t.Fatalf("not ready again after the outage: %+v", s.Health())
	}
	for i := range 5 {
		if resp := post(fmt.Sprint("during-", i)); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("after recovery: %d, want 202", resp.StatusCode)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if handled.Len() == 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	counts := handled.Counts()
	if len(counts) != 6 {
		t.Fatalf("handled %v, want 6 events", counts)
	}
	for id, n := range counts {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
		}
	}
}

// waitFor polls cond until it holds or d has passed.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
