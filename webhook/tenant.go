package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/intakehq/intake/event"
)

// Secret is one of a tenant's secrets (a signing secret, a key, a token,
// in the format its scheme's constructor takes). Until NotAfter (when
// set) it verifies beside the tenant's others: rotation gives the new
// secret at once and the old one a NotAfter, and no delivery signed with
// either is refused meanwhile.
type Secret struct {
	Value    string
	NotAfter time.Time // zero: no end
}

// TenantFunc names the tenant of a request from what it carries (its
// path, a header, a query parameter): fast, and with no lookup. "" means
// the request names none. See [TenantFromPath] and [TenantFromHeader].
type TenantFunc func(r *Request) string

// SecretsFunc returns a tenant's secrets. It returns an error wrapping
// [ErrUnknownTenant] for a tenant that does not exist (the request gets
// a 404); any other error is an outage of the lookup (a 503 with
// Retry-After, nothing acknowledged, the provider retries).
type SecretsFunc func(ctx context.Context, tenant string) ([]Secret, error)

var (
	// ErrUnknownTenant is the error of a request for a tenant that does
	// not exist, or whose secrets have all ended: the handler answers
	// 404.
	ErrUnknownTenant = errors.New("webhook: unknown tenant")
	// ErrSecretLookup is the error of a request whose tenant's secrets
	// could not be looked up: the handler answers 503 with Retry-After.
	ErrSecretLookup = errors.New("webhook: secret lookup failed")
)

// lookupTimeout bounds one lookup of a tenant's secrets.
const lookupTimeout = 10 * time.Second

// MaxTenantLen is the longest tenant name a [Tenants] verifier looks up.
const MaxTenantLen = 128

// validTenant reports a tenant name that may be looked up: 1 to
// MaxTenantLen bytes of letters, digits and "._-:@" (no path separator,
// no control or non-ASCII byte).
func validTenant(t string) bool {
	if t == "" || len(t) > MaxTenantLen || t == "." || t == ".." {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-:@", c) >= 0) {
			return false
		}
	}
	return true
}

// TenantFromPath names the tenant by the path segment after prefix: with
// prefix "/hooks/stripe/", a request to /hooks/stripe/acme names "acme".
// A segment that is percent-encoded is decoded first (and then refused if
// it holds a slash or anything else a tenant name may not).
func TenantFromPath(prefix string) TenantFunc {
	return func(r *Request) string {
		u, err := url.Parse(r.URL)
		if err != nil {
			return ""
		}
		rest, ok := strings.CutPrefix(u.EscapedPath(), prefix)
		if !ok {
			return ""
		}
		seg, _, _ := strings.Cut(rest, "/")
		t, err := url.PathUnescape(seg)
		if err != nil {
			return ""
		}
		return t
	}
}

// TenantFromHeader names the tenant by a request header (one the
// provider sends, or a proxy in front of you sets).
func TenantFromHeader(name string) TenantFunc {
	return func(r *Request) string { return r.Header.Get(name) }
}

// Tenants is a [Verifier] that verifies each request with the secrets
// of its tenant, looked up per request and cached. Build it with
// [PerTenant]. It is safe for concurrent use.
type Tenants struct {
	tenantOf TenantFunc
	secrets  SecretsFunc
	build    func(secrets ...string) *Scheme
	probe    *Scheme // the scheme without secrets: what the handler reads of it
	ttl      time.Duration
	max      int
	now      func() time.Time

	mu      sync.Mutex
	entries map[string]*tenantEntry
	lookups int64
}

type tenantEntry struct {
	ready   chan struct{} // closed once the lookup ended
	err     error         // the lookup's error (an unknown tenant is cached too)
	secrets []Secret
	scheme  *Scheme   // built from the secrets valid at its making
	until   time.Time // the first NotAfter among them: rebuild then
	expires time.Time // when to look up again
}

// TenantOption configures [PerTenant].
type TenantOption func(*Tenants)

// WithSecretsTTL sets how long a tenant's secrets (or its absence) are
// cached before they are looked up again. Defaults to 1 minute; it
// panics if d is negative.
func WithSecretsTTL(d time.Duration) TenantOption {
	if d < 0 {
		panic(fmt.Sprintf("webhook: WithSecretsTTL(%v): must not be negative", d))
	}
	return func(t *Tenants) {
		if d > 0 {
			t.ttl = d
		}
	}
}

// WithTenantCache bounds how many tenants' secrets are cached; past it,
// expired entries are dropped first, then any. Defaults to 10,000; it
// panics if n is negative.
func WithTenantCache(n int) TenantOption {
	if n < 0 {
		panic(fmt.Sprintf("webhook: WithTenantCache(%d): must not be negative", n))
	}
	return func(t *Tenants) {
		if n > 0 {
			t.max = n
		}
	}
}

// WithTenantClock sets the clock secrets' NotAfter and the cache are
// read with (tests). Defaults to time.Now.
func WithTenantClock(now func() time.Time) TenantOption { return func(t *Tenants) { t.now = now } }

// PerTenant returns a verifier that verifies a request with the secrets
// of its tenant: tenantOf names it, secrets looks its secrets up (once
// per tenant and TTL, however many requests come meanwhile), and scheme
// builds the provider's scheme from the secrets still valid, for example
// webhook.Stripe, or func(s ...string) *Scheme { return
// webhook.Meta(verifyToken, s...) }.
//
// Each event gets its tenant in Meta[event.MetaTenant], which makes the
// tenant part of its key: the same provider id from two tenants is two
// events. What a request gets: 400 if it names no tenant, or one longer
// than [MaxTenantLen] or with a character other than letters, digits and
// "._-:@" (no lookup is made); 404 for a tenant the lookup does not
// know, or whose secrets have all ended; 503 with Retry-After when the
// lookup fails; otherwise what the scheme answers (401 for a signature
// no valid secret made).
//
// It panics if scheme is nil or builds a notification-only scheme.
func PerTenant(tenantOf TenantFunc, secrets SecretsFunc, scheme func(secrets ...string) *Scheme, opts ...TenantOption) *Tenants {
	if tenantOf == nil || secrets == nil || scheme == nil {
		panic("webhook: PerTenant with a nil function")
	}
	probe := scheme()
	if probe == nil || probe.notifyOnly {
		panic("webhook: PerTenant: the scheme must verify events (not a notification-only scheme)")
	}
	t := &Tenants{tenantOf: tenantOf, secrets: secrets, build: scheme, probe: probe, ttl: time.Minute, max: 10_000, now: time.Now,
		entries: map[string]*tenantEntry{}}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Lookups returns how many times the secrets were looked up.
func (t *Tenants) Lookups() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lookups
}

// Methods returns the methods of the tenants' scheme.
func (t *Tenants) Methods() []string { return t.probe.Methods() }

// Headers returns the headers the tenants' scheme reads.
func (t *Tenants) Headers() []string { return t.probe.Headers() }

// Verify implements [Verifier], with no request context and no URL: a
// [TenantFromHeader] tenant only. The handler calls VerifyRequest.
func (t *Tenants) Verify(h http.Header, body []byte) (event.Event, error) {
	return t.VerifyRequest(&Request{Method: http.MethodPost, Header: h, Body: body})
}

// VerifyRequest implements [RequestVerifier].
func (t *Tenants) VerifyRequest(r *Request) (event.Event, error) {
	tenant := t.tenantOf(r)
	if !validTenant(tenant) {
		return event.Event{}, malformed("no valid tenant in the request (1 to 128 letters, digits and ._-:@)")
	}
	sc, err := t.scheme(r.Context(), tenant)
	if err != nil {
		return event.Event{}, err
	}
	e, err := sc.VerifyRequest(r)
	if err != nil {
		return e, err
	}
	if e.Meta == nil {
		e.Meta = make(map[string]string, 1)
	}
	e.Meta[event.MetaTenant] = tenant
	return e, nil
}

// scheme returns the tenant's scheme, looking its secrets up when they
// are not cached: one lookup at a time per tenant, the others wait for
// it.
func (t *Tenants) scheme(ctx context.Context, tenant string) (*Scheme, error) {
	now := t.now()
	t.mu.Lock()
	e, ok := t.entries[tenant]
	if ok && isClosed(e.ready) && !now.Before(e.expires) {
		ok = false // expired: look up again
	}
	if !ok {
		t.evict(now)
		e = &tenantEntry{ready: make(chan struct{})}
		t.entries[tenant] = e
		t.lookups++
		t.mu.Unlock()
		t.lookup(ctx, tenant, e)
		t.mu.Lock()
	}
	t.mu.Unlock()
	select {
	case <-e.ready:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ErrSecretLookup, ctx.Err())
	}
	if e.err != nil {
		return nil, e.err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !e.until.IsZero() && !now.Before(e.until) { // a secret ended: without it
		e.scheme, e.until = t.schemeOf(e.secrets, now)
	}
	if e.scheme == nil {
		return nil, fmt.Errorf("%w: %q has no secret in force", ErrUnknownTenant, tenant)
	}
	return e.scheme, nil
}

func (t *Tenants) lookup(ctx context.Context, tenant string, e *tenantEntry) {
	defer close(e.ready)
	// The lookup serves every request waiting for it: not cut short by
	// the first one's client going away, but bounded.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
	defer cancel()
	secrets, err := t.secrets(lctx, tenant)
	now := t.now()
	switch {
	case errors.Is(err, ErrUnknownTenant):
		e.err, e.expires = fmt.Errorf("%w: %q", ErrUnknownTenant, tenant), now.Add(t.ttl)
	case err != nil:
		// Not cached: the next request looks up again.
		e.err, e.expires = fmt.Errorf("%w: %v", ErrSecretLookup, err), now
	default:
		e.secrets, e.expires = slices.Clone(secrets), now.Add(t.ttl)
		e.scheme, e.until = t.schemeOf(e.secrets, now)
	}
}

// schemeOf builds the scheme of the secrets in force at now, and says
// when the first of them ends.
func (t *Tenants) schemeOf(secrets []Secret, now time.Time) (*Scheme, time.Time) {
	var vals []string
	var until time.Time
	for _, s := range secrets {
		if s.Value == "" || (!s.NotAfter.IsZero() && !now.Before(s.NotAfter)) {
			continue
		}
		vals = append(vals, s.Value)
		if !s.NotAfter.IsZero() && (until.IsZero() || s.NotAfter.Before(until)) {
			until = s.NotAfter
		}
	}
	if len(vals) == 0 {
		return nil, time.Time{}
	}
	sc := t.build(vals...)
	if sc == nil || sc.bad != nil {
		return nil, time.Time{}
	}
	return sc, until
}

// evict keeps the cache under its bound: expired entries first, then
// any. Called with t.mu held.
func (t *Tenants) evict(now time.Time) {
	if len(t.entries) < t.max {
		return
	}
	for k, e := range t.entries {
		if isClosed(e.ready) && !now.Before(e.expires) {
			delete(t.entries, k)
		}
	}
	for k, e := range t.entries {
		if len(t.entries) < t.max {
			break
		}
		if isClosed(e.ready) {
			delete(t.entries, k)
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
