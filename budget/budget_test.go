package budget_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake/budget"
	"github.com/intakehq/intake/budget/budgettest"
)

func TestMemoryConformance(t *testing.T) {
	budgettest.Run(t, func(*testing.T) budget.Store { return &budget.Memory{} })
}

// fakeClock is a clock whose sleeps advance it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) sleep(_ context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(max(d, 0))
	return nil
}
func (c *fakeClock) add(d time.Duration) { _ = c.sleep(context.Background(), d) }

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func reserveN(t *testing.T, b *budget.Budget, key string, n int) []time.Duration {
	t.Helper()
	var out []time.Duration
	for range n {
		d, err := b.Reserve(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func TestRateSpacesSlotsInOrder(t *testing.T) {
	clk := &fakeClock{t: t0}
	b := budget.New(&budget.Memory{}, budget.Policy{Rate: 20, Per: time.Second}, budget.WithClock(clk.now, clk.sleep))
	waits := reserveN(t, b, "k", 100)
	for i, d := range waits {
		if want := time.Duration(i) * 50 * time.Millisecond; d != want {
			t.Fatalf("slot %d in %v, want %v (20/s, first come first served)", i, d, want)
		}
	}
	if other := reserveN(t, b, "other", 1)[0]; other != 0 {
		t.Fatalf("another credential waits %v", other)
	}
}

func TestBurstGoesAhead(t *testing.T) {
	clk := &fakeClock{t: t0}
	b := budget.New(&budget.Memory{}, budget.Policy{Rate: 10, Per: time.Second, Burst: 5}, budget.WithClock(clk.now, clk.sleep))
	waits := reserveN(t, b, "k", 7)
	for i := range 5 {
		if waits[i] != 0 {
			t.Fatalf("burst slot %d waits %v", i, waits[i])
		}
	}
	if waits[5] <= 0 || waits[6] <= waits[5] {
		t.Fatalf("after the burst: %v", waits)
	}
}

func TestQuotaStopsAtItsLimitAndResumesAfterReset(t *testing.T) {
	clk := &fakeClock{t: t0}
	b := budget.New(&budget.Memory{}, budget.Policy{Quota: 100, QuotaPer: 24 * time.Hour}, budget.WithClock(clk.now, clk.sleep))
	waits := reserveN(t, b, "k", 100)
	for i, d := range waits {
		if d != 0 {
			t.Fatalf("request %d of a fresh daily quota waits %v", i, d)
		}
	}
	next := reserveN(t, b, "k", 1)[0]
	if next != 24*time.Hour {
		t.Fatalf("the 101st waits %v, want the reset (24h)", next)
	}
	clk.add(24*time.Hour + time.Second)
	after := reserveN(t, b, "k", 99)
	for i, d := range after {
		if d != 0 {
			t.Fatalf("after the reset, request %d waits %v", i, d)
		}
	}
	if d := reserveN(t, b, "k", 1)[0]; d < 23*time.Hour {
		t.Fatalf("the second window's 101st waits %v, want its reset", d)
	}
}

func TestLearnsWhatTheAPISays(t *testing.T) {
	clk := &fakeClock{t: t0}
	ctx := context.Background()
	b := budget.New(&budget.Memory{}, budget.Policy{Rate: 100, Per: time.Second}, budget.WithClock(clk.now, clk.sleep))
	// 5 left in the next 10 s: 2 s apart, not 10 ms.
	if err := b.Learn(ctx, "k", budget.Limits{Remaining: 5, Reset: t0.Add(10 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	waits := reserveN(t, b, "k", 3)
	if waits[1]-waits[0] != 2*time.Second || waits[2]-waits[1] != 2*time.Second {
		t.Fatalf("waits %v, want 2 s apart", waits)
	}
	// None left until the reset: nothing before it.
	if err := b.Learn(ctx, "k", budget.Limits{Remaining: 0, Reset: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if d := reserveN(t, b, "k", 1)[0]; d < time.Minute {
		t.Fatalf("with nothing left, a slot in %v, before the reset", d)
	}
	// A 429 with Retry-After.
	b2 := budget.New(&budget.Memory{}, budget.Policy{Rate: 100, Per: time.Second}, budget.WithClock(clk.now, clk.sleep))
	if err := b2.Learn(ctx, "k", budget.Limits{Limited: true, RetryAfter: 30 * time.Second, Remaining: -1}); err != nil {
		t.Fatal(err)
	}
	if d := reserveN(t, b2, "k", 1)[0]; d != 30*time.Second {
		t.Fatalf("after a 429 asking 30 s, a slot in %v", d)
	}
	if b2.Stats().Limited != 1 {
		t.Fatalf("stats %+v", b2.Stats())
	}
}

func TestParse(t *testing.T) {
	now := t0
	for _, tc := range []struct {
		name   string
		status int
		h      map[string]string
		want   budget.Limits
	}{
		{"nothing", 200, nil, budget.Limits{Remaining: -1}},
		{"IETF draft 3", 200, map[string]string{"RateLimit": "limit=100, remaining=40, reset=30"}, budget.Limits{Remaining: 40, Reset: now.Add(30 * time.Second), Limit: 100}},
		{"IETF draft 7", 200, map[string]string{"RateLimit": `"default";r=5;t=12`, "RateLimit-Policy": `"default";q=20;w=1`}, budget.Limits{Remaining: 5, Reset: now.Add(12 * time.Second), Limit: 20}},
		{"GitHub epoch", 200, map[string]string{"X-RateLimit-Remaining": "4999", "X-RateLimit-Reset": "1796644800", "X-RateLimit-Limit": "5000"}, budget.Limits{Remaining: 4999, Reset: time.Unix(1796644800, 0), Limit: 5000}},
		{"seconds", 200, map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "20"}, budget.Limits{Remaining: 0, Reset: now.Add(20 * time.Second)}},
		{"429 with Retry-After", 429, map[string]string{"Retry-After": "7"}, budget.Limits{Limited: true, RetryAfter: 7 * time.Second, Remaining: -1}},
		{"Retry-After on a 200 is ignored", 200, map[string]string{"Retry-After": "7"}, budget.Limits{Remaining: -1}},
		{"HTTP date", 503, map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, budget.Limits{RetryAfter: 90 * time.Second, Remaining: -1}},
		{"negative", 200, map[string]string{"X-RateLimit-Remaining": "-5", "X-RateLimit-Reset": "20"}, budget.Limits{Remaining: -1}},
		{"absurd", 429, map[string]string{"Retry-After": "99999999999999"}, budget.Limits{Limited: true, Remaining: -1}},
		{"a year capped to a day", 429, map[string]string{"Retry-After": "31536000"}, budget.Limits{Limited: true, RetryAfter: 24 * time.Hour, Remaining: -1}},
		{"garbage", 200, map[string]string{"RateLimit": "r=;t=x;;,,=", "X-RateLimit-Reset": "soon"}, budget.Limits{Remaining: -1}},
	} {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		if got := budget.Parse(tc.status, h, now); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(429, "limit=100, remaining=40, reset=30", "3", "7")
	f.Add(200, `"default";r=5;t=12`, "1796644800", "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Fuzz(func(t *testing.T, status int, rl, reset, ra string) {
		h := http.Header{"Ratelimit": {rl}, "X-Ratelimit-Remaining": {reset}, "X-Ratelimit-Reset": {reset}, "Retry-After": {ra}}
		l := budget.Parse(status, h, t0)
		if l.RetryAfter < 0 || l.RetryAfter > 24*time.Hour || l.Remaining < -1 || l.Limit < 0 {
			t.Fatalf("%+v", l)
		}
	})
}

// TestTransportPacesAndLearns: requests through the transport wait for
// their credential's slot, and a 429's Retry-After holds the next one.
func TestTransportPacesAndLearns(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 3 {
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Header().Set("RateLimit", "limit=10, remaining=8, reset=1")
	}))
	defer srv.Close()
	clk := &fakeClock{t: t0}
	b := budget.New(&budget.Memory{}, budget.Policy{Rate: 10, Per: time.Second}, budget.WithClock(clk.now, clk.sleep))
	client := &http.Client{Transport: b.Transport(nil, budget.ByHeader("Authorization"))}
	get := func(token string) int {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	start := clk.now()
	for range 3 {
		get("tok-a")
	}
	// The third was a 429 asking 5 s: the fourth waits for it.
	get("tok-a")
	if waited := clk.now().Sub(start); waited < 5*time.Second {
		t.Fatalf("four requests, the third a 429 asking 5 s, took %v of the budget's clock", waited)
	}
	before := clk.now()
	get("") // no credential: not paced
	get("tok-b")
	if clk.now() != before {
		t.Fatalf("an unpaced request or another credential waited %v", clk.now().Sub(before))
	}
	if st := b.Stats(); st.Limited != 1 || st.Reserved != 5 {
		t.Fatalf("stats %+v", st)
	}
}
