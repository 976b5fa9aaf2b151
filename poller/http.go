package poller

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/intakehq/intake/event"
)

// RequestFunc builds the request that fetches the events after cursor.
type RequestFunc func(ctx context.Context, cursor string) (*http.Request, error)

// DecodeFunc turns a successful response's body into events, in order,
// and the cursor to fetch from next ("" keeps the current one).
type DecodeFunc func(resp *http.Response, body []byte) (events []event.Event, next string, err error)

// StatusError is a non-2xx answer to a poll request. Body holds at most
// the first 256 bytes of the response.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("poller: HTTP %d: %q", e.Code, e.Body)
}

// ErrResponseTooLarge is returned, wrapped, when a response body is over
// the limit set with [WithMaxResponse].
var ErrResponseTooLarge = errors.New("poller: response too large")

// HTTPOption configures [HTTP].
type HTTPOption func(*httpFetch)

// WithRequestTimeout bounds each request, body included. Defaults to 30
// seconds.
func WithRequestTimeout(d time.Duration) HTTPOption { return func(f *httpFetch) { f.timeout = d } }

// WithMaxResponse bounds a response body, in bytes. Defaults to 10 MiB.
func WithMaxResponse(n int64) HTTPOption { return func(f *httpFetch) { f.maxBody = n } }

// linkPrefix marks a cursor that is the URL of a Link rel="next" page.
const linkPrefix = "link:"

// HTTP returns a FetchFunc for an HTTP list API. build makes the request
// for a cursor; decode reads events and the next cursor from a 2xx
// response. Around them, the fetch:
//
//   - sends If-None-Match and If-Modified-Since with the ETag and
//     Last-Modified last seen for the same URL; a 304 means no events and
//     no cursor change;
//   - turns 429 and 503 into an error carrying Retry-After (seconds or an
//     HTTP date), which the poller waits out, capped;
//   - slows the next poll when X-RateLimit-Remaining or the IETF RateLimit
//     header says the quota is spent, until the reset, and when
//     X-Poll-Interval asks for a longer interval;
//   - follows Link rel="next": the next page's URL becomes the cursor, and
//     the poller fetches it at once, up to its page cap;
//   - turns 410 Gone into [ErrCursorExpired], and any other non-2xx into a
//     [*StatusError].
//
// client defaults to [http.DefaultClient] when nil.
func HTTP(client *http.Client, build RequestFunc, decode DecodeFunc, opts ...HTTPOption) FetchFunc {
	f := &httpFetch{
		client:     client,
		build:      build,
		decode:     decode,
		timeout:    30 * time.Second,
		maxBody:    10 << 20,
		validators: make(map[string]validator),
	}
	if f.client == nil {
		f.client = http.DefaultClient
	}
	for _, o := range opts {
		o(f)
	}
	return f.fetch
}

type validator struct{ etag, lastModified string }

type httpFetch struct {
	client  *http.Client
	build   RequestFunc
	decode  DecodeFunc
	timeout time.Duration
	maxBody int64

	mu         sync.Mutex
	validators map[string]validator // by URL; bounded below
	first      http.Header          // headers of the last built request, reused for Link pages
}

func (f *httpFetch) fetch(ctx context.Context, cursor string) ([]event.Event, string, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := f.request(ctx, cursor)
	if err != nil {
		return nil, "", err
	}
	key := req.URL.String()
	f.mu.Lock()
	v := f.validators[key]
	f.mu.Unlock()
	if v.etag != "" {
		req.Header.Set("If-None-Match", v.etag)
	}
	if v.lastModified != "" {
		req.Header.Set("If-Modified-Since", v.lastModified)
	}

	h := hintsFrom(ctx)
	h.requests++
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("poller: %s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBody+1))
	h.bytes += int64(len(body))
	if err != nil {
		return nil, "", fmt.Errorf("poller: read response: %w", err)
	}
	if int64(len(body)) > f.maxBody {
		return nil, "", fmt.Errorf("%w: over %d bytes", ErrResponseTooLarge, f.maxBody)
	}
	now := time.Now()
	SlowDown(ctx, rateLimitDelay(resp.Header, now))

	switch code := resp.StatusCode; {
	case code == http.StatusNotModified:
		h.notModified = true
		return nil, "", nil
	case code == http.StatusGone:
		return nil, "", fmt.Errorf("%w: HTTP 410", ErrCursorExpired)
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		d, ok := retryAfter(resp.Header.Get("Retry-After"), now)
		err := &StatusError{Code: code, Body: excerpt(body)}
		if ok {
			return nil, "", event.RetryAfter(d, err)
		}
		return nil, "", err
	case code < 200 || code > 299:
		return nil, "", &StatusError{Code: code, Body: excerpt(body)}
	}

	if etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"); etag != "" || lm != "" {
		f.mu.Lock()
		if len(f.validators) >= 1024 {
			clear(f.validators) // only the last few URLs matter
		}
		f.validators[key] = validator{etag: etag, lastModified: lm}
		f.mu.Unlock()
	}
	events, next, err := f.decode(resp, body)
	if err != nil {
		return nil, "", fmt.Errorf("poller: decode response: %w", err)
	}
	if link := nextLink(resp.Header.Values("Link"), req.URL); link != "" {
		MorePages(ctx)
		next = linkPrefix + link
	}
	return events, next, nil
}

// request builds the request for cursor: a Link page's URL is fetched
// with the headers of the last built request; any other cursor goes to
// build.
func (f *httpFetch) request(ctx context.Context, cursor string) (*http.Request, error) {
	if u, ok := strings.CutPrefix(cursor, linkPrefix); ok {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, fmt.Errorf("poller: next page: %w", err)
		}
		f.mu.Lock()
		if f.first != nil {
			req.Header = f.first.Clone()
		}
		f.mu.Unlock()
		return req, nil
	}
	req, err := f.build(ctx, cursor)
	if err != nil {
		return nil, fmt.Errorf("poller: build request: %w", err)
	}
	f.mu.Lock()
	f.first = req.Header.Clone()
	f.mu.Unlock()
	return req, nil
}

func excerpt(body []byte) string {
	if len(body) > 256 {
		body = body[:256]
	}
	return strings.ToValidUTF8(string(body), "?")
}

// retryAfter parses a Retry-After value: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(100*365*24*time.Hour/time.Second) {
			secs = int64(100 * 365 * 24 * time.Hour / time.Second) // the poller caps it anyway
		}
		return time.Duration(secs) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// rateLimitDelay returns how long to wait before the next request when the
// response says the quota is spent: X-RateLimit-Remaining: 0 with
// X-RateLimit-Reset (unix seconds, or seconds from now if small), the IETF
// RateLimit header's r=0 or remaining=0 with t= or reset=, and
// X-Poll-Interval in seconds.
func rateLimitDelay(h http.Header, now time.Time) time.Duration {
	var d time.Duration
	if rem := h.Get("X-Ratelimit-Remaining"); strings.TrimSpace(rem) == "0" {
		if reset, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-Ratelimit-Reset")), 10, 64); err == nil && reset > 0 {
			if reset > 1_000_000_000 { // an epoch time
				d = max(d, time.Unix(reset, 0).Sub(now))
			} else {
				d = max(d, time.Duration(reset)*time.Second)
			}
		}
	}
	if rl := h.Get("Ratelimit"); rl != "" {
		params := map[string]string{}
		for part := range strings.FieldsFuncSeq(rl, func(r rune) bool { return r == ';' || r == ',' }) {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			params[k] = v
		}
		rem, ok := params["r"]
		if !ok {
			rem = params["remaining"]
		}
		reset, ok := params["t"]
		if !ok {
			reset = params["reset"]
		}
		if rem == "0" {
			if secs, err := strconv.ParseInt(reset, 10, 64); err == nil && secs > 0 {
				d = max(d, time.Duration(secs)*time.Second)
			}
		}
	}
	if pi, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-Poll-Interval")), 10, 64); err == nil && pi > 0 {
		d = max(d, time.Duration(pi)*time.Second)
	}
	return max(d, 0)
}

// nextLink returns the absolute URL of the rel="next" entry in Link
// header values, resolved against base, or "" if there is none or it
// points to another origin.
func nextLink(values []string, base *url.URL) string {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			if !strings.HasPrefix(part, "<") {
				continue
			}
			end := strings.IndexByte(part, '>')
			if end < 0 {
				continue
			}
			target, params := part[1:end], part[end+1:]
			for p := range strings.SplitSeq(params, ";") {
				k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(k, "rel") {
					for rel := range strings.FieldsSeq(strings.Trim(val, `"`)) {
						if strings.EqualFold(rel, "next") {
							// Only follow links to the same origin: the next
							// request carries the first one's headers
							// (credentials included).
							u, err := base.Parse(target)
							if err != nil || u.Scheme != base.Scheme || u.Host != base.Host {
								return ""
							}
							return u.String()
						}
					}
				}
			}
		}
	}
	return ""
}
