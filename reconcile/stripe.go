// Package reconcile holds ready-made fetchers for providers' APIs, the
// other half of the hybrid pattern: a poller that sweeps what the
// provider's webhooks may have missed, keyed as the webhooks are so that
// the stream dedupes the two paths, and the fetch of an object a thin
// event names.
package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fetch"
	"github.com/intakehq/intake/poller"
)

// StripeAPI is Stripe's API.
const StripeAPI = "https://api.stripe.com"

// StripeOption configures [StripeEvents] and [StripeObject].
type StripeOption func(*stripeConfig)

type stripeConfig struct {
	base        string
	client      *http.Client
	types       []string
	undelivered bool
	lookback    time.Duration
	limit       int
	now         func() time.Time
}

// WithStripeBaseURL sends the requests to base instead of Stripe's API
// (stripe-mock, a proxy). Defaults to https://api.stripe.com.
func WithStripeBaseURL(base string) StripeOption {
	return func(c *stripeConfig) { c.base = strings.TrimSuffix(base, "/") }
}

// WithStripeClient sets the HTTP client. Defaults to [http.DefaultClient].
func WithStripeClient(client *http.Client) StripeOption {
	return func(c *stripeConfig) { c.client = client }
}

// WithTypes lists only events of these types (types[]; Stripe takes up
// to 20). Defaults to every type.
func WithTypes(types ...string) StripeOption { return func(c *stripeConfig) { c.types = types } }

// WithUndelivered lists only the events whose webhook delivery has not
// succeeded yet (delivery_success=false): the reconciliation of missed
// webhooks, at the cost of one request per sweep. By default the sweep
// lists every event.
func WithUndelivered() StripeOption { return func(c *stripeConfig) { c.undelivered = true } }

// WithLookback sets how far back each sweep lists events
// (created[gte] = now − d). Defaults to 72 hours (Stripe keeps events
// for 30 days and retries webhooks for 3). It panics if d is not
// positive.
func WithLookback(d time.Duration) StripeOption {
	if d <= 0 {
		panic(fmt.Sprintf("reconcile: WithLookback(%v): not positive", d))
	}
	return func(c *stripeConfig) { c.lookback = d }
}

// withStripeClock sets the clock, for tests.
func withStripeClock(now func() time.Time) StripeOption { return func(c *stripeConfig) { c.now = now } }

func stripeSettings(opts []StripeOption) stripeConfig {
	c := stripeConfig{base: StripeAPI, client: http.DefaultClient, lookback: 72 * time.Hour, limit: 100, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	if c.client == nil {
		c.client = http.DefaultClient
	}
	return c
}

// sweepCursor is the cursor of a sweep to start: the page that ends a
// sweep points at it, so that the next poll starts another.
const sweepCursor = "sweep"

// StripeEvents returns a [poller.Fetcher] that sweeps Stripe's events
// (GET /v1/events): each poll lists, newest first and a page of 100 at a
// time (starting_after), the events created since the lookback
// (created[gte]), optionally of some types only and only those whose
// webhook was not delivered. Each event keeps its evt_ id and its body
// (the same JSON object a webhook carries), so with the poller and the
// webhook handler named alike ("stripe"), the stream handles each event
// once whichever path brought it. The cursor is the sweep's created[gte]
// and the last id read, so a restart mid-sweep resumes it; after the
// last page the next poll starts a new sweep. Requests carry apiKey as a
// bearer token; 429s and Retry-After are obeyed as [poller.HTTP] does.
//
// Every sweep lists the whole lookback again (Stripe retries a failed
// webhook for up to three days, so an event's delivery can fail long
// after it was created): a sweep costs one request per 100 events created
// in the lookback (an account with 10,000 events in 72 hours: 100
// requests a sweep, so a poll every 5 minutes is about 20 requests a
// minute, within Stripe's read limit of 100 a second). [WithUndelivered]
// lists only the events whose webhook failed, usually one page.
func StripeEvents(apiKey string, opts ...StripeOption) *poller.HTTPFetcher {
	c := stripeSettings(opts)
	build := func(ctx context.Context, cursor string) (*http.Request, error) {
		q := url.Values{}
		q.Set("limit", strconv.Itoa(c.limit))
		gte, after := parseSweep(cursor)
		if gte == 0 {
			gte = c.now().Add(-c.lookback).Unix()
		}
		q.Set("created[gte]", strconv.FormatInt(gte, 10))
		if after != "" {
			q.Set("starting_after", after)
		}
		for _, t := range c.types {
			q.Add("types[]", t)
		}
		if c.undelivered {
			q.Set("delivery_success", "false")
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/v1/events?"+q.Encode(), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+apiKey)
		return req, nil
	}
	decode := func(resp *http.Response, body []byte) (poller.Page, error) {
		var list struct {
			Data    []json.RawMessage `json:"data"`
			HasMore bool              `json:"has_more"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return poller.Page{}, fmt.Errorf("reconcile: Stripe list: %w", err)
		}
		pg := poller.Page{More: list.HasMore, Next: sweepCursor}
		for _, raw := range list.Data {
			var head struct {
				ID      string `json:"id"`
				Type    string `json:"type"`
				Created int64  `json:"created"`
			}
			if err := json.Unmarshal(raw, &head); err != nil || head.ID == "" {
				return poller.Page{}, fmt.Errorf("reconcile: Stripe event without an id: %.200s", raw)
			}
			pg.Events = append(pg.Events, event.Event{ID: head.ID, Type: head.Type, Time: time.Unix(head.Created, 0), Payload: raw})
		}
		if list.HasMore && len(pg.Events) > 0 {
			gte := resp.Request.URL.Query().Get("created[gte]") // the sweep's, as sent
			pg.Next = "gte=" + gte + "&after=" + url.QueryEscape(pg.Events[len(pg.Events)-1].ID)
		}
		return pg, nil
	}
	return poller.HTTP(c.client, build, decode)
}

// parseSweep reads a sweep's cursor: its created[gte] and the last id
// read (0 and "" for a sweep to start).
func parseSweep(cursor string) (gte int64, after string) {
	if cursor == "" || cursor == sweepCursor {
		return 0, ""
	}
	q, err := url.ParseQuery(cursor)
	if err != nil {
		return 0, ""
	}
	gte, _ = strconv.ParseInt(q.Get("gte"), 10, 64)
	return gte, q.Get("after")
}

// StripeThin says which object a Stripe thin event (an event
// notification of the v2 API) is about: its related_object's id and
// URL. Give it to [fetch.New] with [StripeObject].
func StripeThin(e event.Event) (fetch.Object, bool) {
	var n struct {
		Related *struct {
			ID  string `json:"id"`
			URL string `json:"url"`
		} `json:"related_object"`
	}
	if json.Unmarshal(e.Payload, &n) != nil || n.Related == nil || n.Related.ID == "" || n.Related.URL == "" {
		return fetch.Object{}, false
	}
	return fetch.Object{ID: n.Related.ID, URL: n.Related.URL}, true
}

// StripeObject returns a [fetch.Func] that GETs the current state of a
// Stripe object: o.URL, relative to the API (/v1/charges/ch_…) as thin
// events give it, or absolute on the same host.
func StripeObject(apiKey string, opts ...StripeOption) fetch.Func {
	c := stripeSettings(opts)
	return fetch.HTTP(c.client, func(ctx context.Context, o fetch.Object) (*http.Request, error) {
		u := o.URL
		if strings.HasPrefix(u, "/") {
			u = c.base + u
		} else if !strings.HasPrefix(u, c.base+"/") {
			return nil, fmt.Errorf("reconcile: %q is not a URL of %s", o.URL, c.base)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+apiKey)
		return req, nil
	})
}
