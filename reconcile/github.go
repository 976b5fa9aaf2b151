package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
)

// GitHubAPI is GitHub's REST API.
const GitHubAPI = "https://api.github.com"

// GitHubOption configures [GitHubRedeliver].
type GitHubOption func(*githubConfig)

type githubConfig struct {
	base     string
	client   *http.Client
	lookback time.Duration
	perPage  int
	now      func() time.Time
}

// WithGitHubBaseURL sends the requests to base instead of GitHub's API
// (GitHub Enterprise Server: https://HOST/api/v3). Defaults to
// https://api.github.com.
func WithGitHubBaseURL(base string) GitHubOption {
	return func(c *githubConfig) { c.base = strings.TrimSuffix(base, "/") }
}

// WithGitHubClient sets the HTTP client. Defaults to [http.DefaultClient].
func WithGitHubClient(client *http.Client) GitHubOption {
	return func(c *githubConfig) { c.client = client }
}

// WithGitHubLookback sets how far back the first run looks (GitHub keeps
// deliveries for three days). Defaults to 24 hours; it panics if d is
// not positive.
func WithGitHubLookback(d time.Duration) GitHubOption {
	if d <= 0 {
		panic(fmt.Sprintf("reconcile: WithGitHubLookback(%v): not positive", d))
	}
	return func(c *githubConfig) { c.lookback = d }
}

// withGitHubPage sets the page size and the clock, for tests.
func withGitHubPage(n int, now func() time.Time) GitHubOption {
	return func(c *githubConfig) { c.perPage, c.now = n, now }
}

// GitHubRedeliver returns a [poller.Fetcher] that recovers GitHub's failed
// webhook deliveries as GitHub recommends: GitHub never retries a failed
// delivery itself. Each poll lists the hook's deliveries since the last
// run (GET {hook}/deliveries, newest first, every page by its Link
// header), groups them by guid (the X-GitHub-Delivery of the webhook),
// and for every guid without a successful (2xx) attempt asks GitHub to
// deliver its latest attempt again (POST {hook}/deliveries/{id}/attempts).
// The redelivery arrives through the webhook handler like the original,
// with the same guid and body, so the stream keys it as it would have
// (and a delivery that did arrive is a duplicate). The poll returns no
// event; its cursor is the start of the last complete run, so a failed
// run (a 5xx, a refused redelivery) is done again from where it began.
// Deliveries are compared at GitHub's precision, the second: a run also
// looks at the second in which the last one began, so a delivery that
// failed then is not missed (and one still failing may be asked for
// twice).
//
// The fetcher puts no event of its own: run it as a poller in the stream
// whose GitHub webhook handler receives the redeliveries (the poller's
// lease and checkpoint then keep one replica sweeping, and a failed run
// is retried with backoff). To run it apart from any stream, give
// [poller.Poller.Run] any sink: it is never called.
//
// hook is the hook's path: "/repos/{owner}/{repo}/hooks/{hook_id}" for
// a repository webhook, "/app/hook" for a GitHub App's (whose token is
// then the app's JWT). token goes in the Authorization header.
func GitHubRedeliver(hook, token string, opts ...GitHubOption) poller.Fetcher {
	c := githubConfig{base: GitHubAPI, client: http.DefaultClient, lookback: 24 * time.Hour, perPage: 100, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	if c.client == nil {
		c.client = http.DefaultClient
	}
	return &githubRedeliver{c: c, hook: "/" + strings.Trim(hook, "/"), token: token}
}

type githubRedeliver struct {
	c     githubConfig
	hook  string
	token string
}

type githubDelivery struct {
	ID          int64     `json:"id"`
	GUID        string    `json:"guid"`
	DeliveredAt time.Time `json:"delivered_at"`
	StatusCode  int       `json:"status_code"`
}

// Fetch implements [poller.Fetcher].
func (g *githubRedeliver) Fetch(ctx context.Context, cursor string) (poller.Page, error) {
	start := g.c.now()
	since := start.Add(-g.c.lookback)
	if t, err := time.Parse(time.RFC3339Nano, cursor); err == nil {
		since = t
	}
	// GitHub stamps delivered_at to the second: a delivery in the second
	// the last run began is looked at again (one with a success is
	// skipped, so seeing it twice is harmless).
	since = since.Truncate(time.Second)
	latest := map[string]githubDelivery{} // per guid: its latest attempt
	ok := map[string]bool{}               // guids with a 2xx attempt
	next := g.c.base + g.hook + "/deliveries?per_page=" + strconv.Itoa(g.c.perPage)
	for next != "" {
		var page []githubDelivery
		link, err := g.do(ctx, http.MethodGet, next, &page)
		if err != nil {
			return poller.Page{}, err
		}
		older := false
		for _, d := range page {
			if d.DeliveredAt.Before(since) {
				older = true // newest first: the rest is older still
				break
			}
			if d.StatusCode >= 200 && d.StatusCode < 300 {
				ok[d.GUID] = true
			}
			if l, seen := latest[d.GUID]; !seen || d.DeliveredAt.After(l.DeliveredAt) {
				latest[d.GUID] = d
			}
		}
		next = ""
		if !older {
			next = nextPage(link, g.c.base)
		}
	}
	for guid, d := range latest {
		if ok[guid] {
			continue
		}
		if _, err := g.do(ctx, http.MethodPost, fmt.Sprintf("%s%s/deliveries/%d/attempts", g.c.base, g.hook, d.ID), nil); err != nil {
			return poller.Page{}, fmt.Errorf("reconcile: redeliver %s: %w", guid, err)
		}
	}
	// A delivery made during this run is looked at by the next: the
	// cursor is this run's start.
	return poller.Page{Next: start.UTC().Format(time.RFC3339Nano)}, nil
}

// do sends a request to GitHub and decodes a JSON answer into out (when
// not nil); it returns the Link header. 429 and 503 carry Retry-After.
func (g *githubRedeliver) do(ctx context.Context, method, u string, out any) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+g.token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	resp, err := g.c.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 10<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		serr := &poller.StatusError{Code: resp.StatusCode, Body: string(body[:min(len(body), 256)])}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusForbidden {
			if d, ok := poller.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				return "", event.RetryAfter(d, serr)
			}
		}
		return "", serr
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return "", fmt.Errorf("reconcile: GitHub answer: %w", err)
		}
	}
	return strings.Join(resp.Header.Values("Link"), ","), nil
}

// nextPage returns the rel="next" URL of a Link header, if it is on the
// API's origin (the token goes nowhere else).
func nextPage(link, base string) string {
	b, err := url.Parse(base)
	if err != nil {
		return ""
	}
	for _, part := range strings.Split(link, ",") {
		target, params, found := strings.Cut(strings.TrimSpace(part), ";")
		if !found || !strings.Contains(params, `rel="next"`) {
			continue
		}
		u, err := url.Parse(strings.Trim(strings.TrimSpace(target), "<>"))
		if err != nil || u.Scheme != b.Scheme || u.Host != b.Host {
			return ""
		}
		return u.String()
	}
	return ""
}
