package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

// tenantDir is a tenants' secrets directory that counts its lookups and
// can be failed or changed.
type tenantDir struct {
	mu      sync.Mutex
	secrets map[string][]webhook.Secret
	down    bool
	lookups atomic.Int64
}

func (d *tenantDir) lookup(_ context.Context, tenant string) ([]webhook.Secret, error) {
	d.lookups.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.down {
		return nil, errors.New("dial tcp 10.0.0.5:5432: connection refused")
	}
	s, ok := d.secrets[tenant]
	if !ok {
		return nil, fmt.Errorf("tenant %q: %w", tenant, webhook.ErrUnknownTenant)
	}
	return s, nil
}

// tenantClock is a settable clock.
type tenantClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *tenantClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *tenantClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// collect is a sink that keeps events by key, and answers a key seen
// before as a duplicate, as a stream does.
type collect struct {
	mu   sync.Mutex
	keys map[string]event.Event
}

func (c *collect) Put(_ context.Context, e event.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.keys[e.Key()]; ok {
		return event.ErrDuplicate
	}
	c.keys[e.Key()] = e
	return nil
}

func tenantHandler(t *testing.T, d *tenantDir, clk *tenantClock) (*webhook.Handler, *webhook.Tenants, *collect) {
	t.Helper()
	v := webhook.PerTenant(webhook.TenantFromPath("/hooks/stripe/"), d.lookup, webhook.Stripe,
		webhook.WithSecretsTTL(time.Minute), webhook.WithTenantClock(clk.now))
	h := webhook.New("stripe", v, webhook.WithLogger(quiet))
	sink := &collect{keys: map[string]event.Event{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx, sink) }()
	t.Cleanup(func() { cancel(); <-done })
	<-h.Started()
	return h, v, sink
}

func stripeTo(h http.Handler, tenant, secret, id string) int {
	body := []byte(`{"id":"` + id + `","type":"invoice.paid"}`)
	r := httptest.NewRequest("POST", "/hooks/stripe/", strings.NewReader(string(body)))
	r.RequestURI = "/hooks/stripe/" + tenant // as received, even what no client library would send
	for k, v := range webhook.SignStripe(secret, time.Now(), body) {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

// TestRotationUnderLoad sends 50,000 signed webhooks to 1,000 tenants from
// 32 senders while every tenant's secret is rotated: the new secret is
// valid at once, the old one until its NotAfter, which passes mid-run.
// No valid webhook is refused, no invalid one (an ended secret, another
// tenant's, an unknown tenant) is accepted, and the secrets are looked
// up once per tenant and TTL, not per request.
func TestRotationUnderLoad(t *testing.T) {
	const tenants, perPhase = 1000, 10_000
	clk := &tenantClock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
	d := &tenantDir{secrets: map[string][]webhook.Secret{}}
	oldSecret := func(i int) string { return fmt.Sprintf("whsec_old_%04d", i) }
	newSecret := func(i int) string { return fmt.Sprintf("whsec_new_%04d", i) }
	for i := range tenants {
		d.secrets[fmt.Sprintf("t%04d", i)] = []webhook.Secret{{Value: oldSecret(i)}}
	}
	h, v, sink := tenantHandler(t, d, clk)

	var seq atomic.Int64
	type outcome struct{ refusedValid, acceptedInvalid atomic.Int64 }
	var out outcome
	// phase sends perPhase webhooks from 32 senders; sign picks each
	// one's secret and says whether it must verify.
	phase := func(sign func(i int, n int64) (secret string, valid bool)) {
		var wg sync.WaitGroup
		per := perPhase / 32
		for s := range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range per {
					i := (s*per + k) % tenants
					n := seq.Add(1)
					secret, valid := sign(i, n)
					code := stripeTo(h, fmt.Sprintf("t%04d", i), secret, fmt.Sprintf("evt_%06d", n))
					switch {
					case valid && code != http.StatusAccepted:
						out.refusedValid.Add(1)
					case !valid && code/100 == 2:
						out.acceptedInvalid.Add(1)
					}
				}
			}()
		}
		wg.Wait()
	}
	// 1. Old secrets only.
	phase(func(i int, n int64) (string, bool) { return oldSecret(i), true })
	if got := v.Lookups(); got != tenants {
		t.Fatalf("%d lookups for %d tenants in one TTL, want %d", got, tenants, tenants)
	}
	// 2. Rotated: the new secret at once, the old one for ten more
	// minutes; the cache's minute passes, so each tenant is looked up
	// once more.
	d.mu.Lock()
	rotatedAt := clk.now()
	for i := range tenants {
		d.secrets[fmt.Sprintf("t%04d", i)] = []webhook.Secret{{Value: newSecret(i)}, {Value: oldSecret(i), NotAfter: rotatedAt.Add(10 * time.Minute)}}
	}
	d.mu.Unlock()
	clk.add(2 * time.Minute)
	phase(func(i int, n int64) (string, bool) {
		if n%2 == 0 {
			return oldSecret(i), true // still valid: a delivery signed before the provider switched
		}
		return newSecret(i), true
	})
	// 3. The old secrets end: a phase with both, then (the clock past
	// their NotAfter, and a TTL) one with the new only. The clock moves
	// between phases, never under a request in flight, so that what a
	// sender expects is what the verifier sees.
	clk.add(7 * time.Minute)
	phase(func(i int, n int64) (string, bool) {
		if n%3 == 0 {
			return oldSecret(i), true
		}
		return newSecret(i), true
	})
	clk.add(2 * time.Minute)
	phase(func(i int, n int64) (string, bool) {
		if n%3 == 0 {
			return oldSecret(i), false
		}
		return newSecret(i), true
	})
	// 4. Only what must fail: ended secrets, another tenant's, an
	// unknown tenant.
	phase(func(i int, n int64) (string, bool) {
		if n%2 == 0 {
			return oldSecret(i), false
		}
		return newSecret((i + 1) % tenants), false
	})
	for range 100 {
		if code := stripeTo(h, "t9999", newSecret(1), "evt_x"); code != http.StatusNotFound {
			t.Fatalf("an unknown tenant got %d, want 404", code)
		}
	}

	if n := out.refusedValid.Load(); n != 0 {
		t.Errorf("%d valid webhooks refused", n)
	}
	if n := out.acceptedInvalid.Load(); n != 0 {
		t.Errorf("%d invalid webhooks accepted", n)
	}
	// Lookups: each tenant once per phase after which the clock passed
	// a TTL (phases 1, 2, 3 and 4; phase 5 comes within 4's TTL), and the
	// unknown tenant once.
	if got, want := v.Lookups(), int64(4*tenants+1); got != want {
		t.Errorf("%d lookups for 50,020 requests: want one per tenant and TTL, %d", got, want)
	}
	if v.Lookups() != d.lookups.Load() {
		t.Errorf("the verifier counted %d lookups, the directory %d", v.Lookups(), d.lookups.Load())
	}
	t.Logf("%d requests, %d lookups, %d events stored", seq.Load()+100, v.Lookups(), len(sink.keys))
}

// TestTenantsApart: the same provider id from two tenants is two events,
// each handled once by a stream, and a resend is a duplicate of its own
// tenant's.
func TestTenantsApart(t *testing.T) {
	d := &tenantDir{secrets: map[string][]webhook.Secret{
		"acme":   {{Value: "whsec_acme"}},
		"globex": {{Value: "whsec_globex"}},
	}}
	v := webhook.PerTenant(webhook.TenantFromPath("/hooks/stripe/"), d.lookup, webhook.Stripe)
	h := webhook.New("stripe", v, webhook.WithLogger(quiet))
	s := intake.New(intake.WithLogger(quiet))
	s.Add(h)
	var mu sync.Mutex
	handled := map[string]int{}
	s.Handle(func(_ context.Context, e event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		handled[e.Meta[event.MetaTenant]+"/"+e.ID]++
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-s.Started()
	for _, tc := range []struct {
		tenant, secret string
		want           int
	}{{"acme", "whsec_acme", 202}, {"globex", "whsec_globex", 202}} {
		if code := stripeTo(h, tc.tenant, tc.secret, "evt_1"); code != tc.want {
			t.Fatalf("%s's evt_1: %d, want %d", tc.tenant, code, tc.want)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(handled)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("handled %v", handled)
		}
		time.Sleep(time.Millisecond)
	}
	if code := stripeTo(h, "acme", "whsec_acme", "evt_1"); code != http.StatusOK {
		t.Fatalf("acme's evt_1 again: %d, want 200 (a duplicate)", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if handled["acme/evt_1"] != 1 || handled["globex/evt_1"] != 1 {
		t.Fatalf("handled %v, want each tenant's evt_1 once", handled)
	}
	if k := (event.Event{Source: "stripe", ID: "evt_1", Meta: map[string]string{event.MetaTenant: "acme"}}).Key(); k != "@4:acme:6:stripe:evt_1" {
		t.Fatalf("key %q", k)
	}
}

// TestHostileTenantsAreRefusedWithoutALookup: what a request names as its
// tenant is checked before anything is looked up.
func TestHostileTenantsAreRefusedWithoutALookup(t *testing.T) {
	d := &tenantDir{secrets: map[string][]webhook.Secret{"acme": {{Value: "whsec_acme"}}}}
	clk := &tenantClock{t: time.Now()}
	h, v, _ := tenantHandler(t, d, clk)
	for name, tenant := range map[string]string{
		"none":       "",
		"10 KB":      strings.Repeat("a", 10<<10),
		"129 bytes":  strings.Repeat("a", 129),
		"traversal":  "..%2F..%2Fetc%2Fpasswd",
		"dot-dot":    "..",
		"NUL":        "ac%00me",
		"newline":    "ac%0Ame",
		"space":      "ac%20me",
		"non-ASCII":  "acm%C3%A9",
		"bad escape": "acme%zz",
	} {
		if code := stripeTo(h, tenant, "whsec_acme", "evt_1"); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, code)
		}
	}
	if n := v.Lookups(); n != 0 {
		t.Fatalf("%d lookups for hostile tenants", n)
	}
	if code := stripeTo(h, strings.Repeat("a", 128), "whsec_acme", "evt_1"); code != http.StatusNotFound {
		t.Fatalf("a 128-byte tenant: %d, want 404 (valid, unknown)", code)
	}
}

func TestSecretLookupOutageIsA503AndNotCached(t *testing.T) {
	d := &tenantDir{secrets: map[string][]webhook.Secret{"acme": {{Value: "whsec_acme"}}}, down: true}
	clk := &tenantClock{t: time.Now()}
	h, v, sink := tenantHandler(t, d, clk)
	body := []byte(`{"id":"evt_1","type":"invoice.paid"}`)
	r := httptest.NewRequest("POST", "/hooks/stripe/acme", strings.NewReader(string(body)))
	for k, vv := range webhook.SignStripe("whsec_acme", time.Now(), body) {
		r.Header[k] = vv
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("lookup down: %d, Retry-After %q; want 503 with Retry-After", w.Code, w.Header().Get("Retry-After"))
	}
	if strings.Contains(w.Body.String(), "10.0.0.5") {
		t.Fatalf("the lookup's error reached the caller: %q", w.Body.String())
	}
	d.mu.Lock()
	d.down = false
	d.mu.Unlock()
	if code := stripeTo(h, "acme", "whsec_acme", "evt_1"); code != http.StatusAccepted {
		t.Fatalf("after the outage: %d, want 202 (a failed lookup is not cached)", code)
	}
	if v.Lookups() != 2 || len(sink.keys) != 1 {
		t.Fatalf("%d lookups, %d events", v.Lookups(), len(sink.keys))
	}
	// An unknown tenant is cached: a flood is one lookup a TTL.
	for range 50 {
		stripeTo(h, "initech", "whsec_acme", "evt_2")
	}
	if v.Lookups() != 3 {
		t.Fatalf("%d lookups after 50 requests for an unknown tenant, want 3", v.Lookups())
	}
}

func TestPerTenantRefusesNonsense(t *testing.T) {
	for name, fn := range map[string]func(){
		"nil tenant func": func() {
			webhook.PerTenant(nil, func(context.Context, string) ([]webhook.Secret, error) { return nil, nil }, webhook.Stripe)
		},
		"notify-only": func() {
			webhook.PerTenant(webhook.TenantFromHeader("X-Tenant"), func(context.Context, string) ([]webhook.Secret, error) { return nil, nil }, webhook.Dropbox)
		},
		"negative TTL": func() { webhook.WithSecretsTTL(-time.Second) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

// The replay guard keys a body by its tenant too: the same body sent to
// two tenants (a provider's event fanned out to two installations) is
// two deliveries, not a replay of the first.
func TestReplayGuardKeepsTenantsApart(t *testing.T) {
	d := &tenantDir{secrets: map[string][]webhook.Secret{"acme": {{Value: "s-acme"}}, "globex": {{Value: "s-globex"}}}}
	v := webhook.PerTenant(webhook.TenantFromPath("/hooks/github/"), d.lookup, webhook.GitHub)
	h := webhook.New("github", v, webhook.WithLogger(quiet), webhook.WithReplayGuard(dedupe.NewMemory()))
	sink := &collect{keys: map[string]event.Event{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = h.Run(ctx, sink) }()
	defer func() { cancel(); <-done }()
	<-h.Started()
	body := []byte(`{"action":"opened"}`)
	for i, tenant := range []string{"acme", "globex"} {
		r := httptest.NewRequest("POST", "/hooks/github/"+tenant, strings.NewReader(string(body)))
		for k, vv := range webhook.SignGitHub("s-"+tenant, fmt.Sprintf("delivery-%d", i), "issues", body) {
			r.Header[k] = vv
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusAccepted {
			t.Fatalf("%s: %d, want 202 (not a replay of another tenant's body)", tenant, w.Code)
		}
	}
	if len(sink.keys) != 2 {
		t.Fatalf("%d events stored, want one per tenant", len(sink.keys))
	}
}
