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
	"sync/atomic"
	"time"

	"github.com/intakehq/intake/event"
)

// RequestFunc builds the request that fetches the events after cursor,
// the API's own cursor ("" or the initial cursor at first). It is called
// for every request, Link pages included, so that what it adds
// (credentials, headers) is always there.
type RequestFunc func(ctx context.Context, cursor string) (*http.Request, error)

// DecodeFunc reads a successful response: the page's events in order, the
// API's own cursor to fetch from next in Next ("" keeps the current one),
// More when the body says another page is ready (a has_more field), and
// Wait when the body asks for a delay. The HTTP fetch adds what the
// headers say.
type DecodeFunc func(resp *http.Response, body []byte) (Page, error)

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
type HTTPOption func(*HTTPFetcher)

// WithRequestTimeout bounds each request, body included. Defaults to 30
// seconds.
func WithRequestTimeout(d time.Duration) HTTPOption {
	d = positive("WithRequestTimeout", d, 30*time.Second)
	return func(f *HTTPFetcher) { f.timeout = d }
}

// WithMaxResponse bounds a response body, in bytes. Defaults to 10 MiB.
func WithMaxResponse(n int64) HTTPOption {
	if n < 0 {
		panic(fmt.Sprintf("poller: WithMaxResponse(%d): must not be negative (0 means the default, 10 MiB)", n))
	}
	if n == 0 {
		n = 10 << 20
	}
	return func(f *HTTPFetcher) { f.maxBody = n }
}

// HTTPFetcher is the [Fetcher] [HTTP] returns. It keeps no state between
// fetches but its counters: everything it needs to resume (the API's
// cursor, the Link page it is on, the validators of the last response) is
// in the cursor it returns, which the poller saves only once every event
// of the page is stored. It is safe for concurrent use.
type HTTPFetcher struct {
	client  *http.Client
	build   RequestFunc
	decode  DecodeFunc
	timeout time.Duration
	maxBody int64

	requests, bytes atomic.Int64
}

// HTTPStats are an [HTTPFetcher]'s counters.
type HTTPStats struct {
	Requests int64 // HTTP requests made
	Bytes    int64 // response bytes read
}

// Stats returns the fetcher's counters since it was created.
func (f *HTTPFetcher) Stats() HTTPStats {
	return HTTPStats{Requests: f.requests.Load(), Bytes: f.bytes.Load()}
}

// HTTP returns a [Fetcher] for an HTTP list API. build makes the request
// for the API's cursor; decode reads a 2xx response. Around them, the
// fetch:
//
//   - sends If-None-Match and If-Modified-Since with the ETag and
//     Last-Modified of the last stored page when it asks for the same URL
//     again; a 304 is a page with no events and [Page.NotModified]. The
//     validators travel in the cursor, so a page whose events could not
//     all be stored is fetched again in full;
//   - turns 429 and 503 into an error carrying Retry-After (seconds or an
//     HTTP date), which the poller waits out, capped;
//   - sets [Page.Wait] when X-RateLimit-Remaining or the IETF RateLimit
//     header says the quota is spent (until the reset), and when
//     X-Poll-Interval asks for a longer interval;
//   - follows Link rel="next" on the same origin: the next page's URL goes
//     into the cursor, the request for it is still made by build (with its
//     headers) and pointed at that URL, and the poller fetches it at once,
//     up to its page cap. After the last page of a chain it stays on that
//     page until the API's own cursor moves;
//   - turns 410 Gone into [ErrCursorExpired], and any other non-2xx into a
//     [*StatusError].
//
// client defaults to [http.DefaultClient] when nil.
func HTTP(client *http.Client, build RequestFunc, decode DecodeFunc, opts ...HTTPOption) *HTTPFetcher {
	if build == nil || decode == nil {
		panic("poller: HTTP needs a build and a decode function")
	}
	f := &HTTPFetcher{client: client, build: build, decode: decode, timeout: 30 * time.Second, maxBody: 10 << 20}
	if f.client == nil {
		f.client = http.DefaultClient
	}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Fetch implements [Fetcher].
func (f *HTTPFetcher) Fetch(ctx context.Context, cursor string) (Page, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	at := parseHTTPCursor(cursor)
	req, err := f.build(ctx, at.api)
	if err != nil {
		return Page{}, fmt.Errorf("poller: build request: %w", err)
	}
	if at.link != "" {
		if u, err := req.URL.Parse(at.link); err == nil && sameOrigin(u, req.URL) {
			req.URL, req.Host = u, ""
		}
	}
	url := req.URL.String()
	if at.url == url {
		if at.etag != "" {
			req.Header.Set("If-None-Match", at.etag)
		}
		if at.modified != "" {
			req.Header.Set("If-Modified-Since", at.modified)
		}
	}

	f.requests.Add(1)
	resp, err := f.client.Do(req)
	if err != nil {
		return Page{}, fmt.Errorf("poller: %s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBody+1))
	f.bytes.Add(int64(len(body)))
	if err != nil {
		return Page{}, fmt.Errorf("poller: read response: %w", err)
	}
	if int64(len(body)) > f.maxBody {
		return Page{}, fmt.Errorf("%w: over %d bytes", ErrResponseTooLarge, f.maxBody)
	}
	now := time.Now()
	wait := rateLimitDelay(resp.Header, now)

	switch code := resp.StatusCode; {
	case code == http.StatusNotModified:
		return Page{NotModified: true, Wait: wait}, nil
	case code == http.StatusGone:
		return Page{Wait: wait}, fmt.Errorf("%w: HTTP 410", ErrCursorExpired)
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		d, ok := ParseRetryAfter(resp.Header.Get("Retry-After"), now)
		err := &StatusError{Code: code, Body: excerpt(body)}
		if ok {
			return Page{Wait: wait}, event.RetryAfter(d, err)
		}
		return Page{Wait: wait}, err
	case code < 200 || code > 299:
		return Page{Wait: wait}, &StatusError{Code: code, Body: excerpt(body)}
	}

	pg, err := f.decode(resp, body)
	if err != nil {
		return Page{Wait: wait}, fmt.Errorf("poller: decode response: %w", err)
	}
	next := httpCursor{api: at.api, etag: resp.Header.Get("ETag"), modified: resp.Header.Get("Last-Modified")}
	if next.etag != "" || next.modified != "" {
		next.url = url // the validators are for this URL only
	}
	moved := pg.Next != "" && pg.Next != at.api
	if moved {
		next.api = pg.Next
	}
	switch link := nextLink(resp.Header.Values("Link"), req.URL); {
	case link != "":
		next.link, pg.More = link, true
	case !moved:
		next.link = at.link // the last page of a chain: stay on it
	}
	pg.Next = next.String()
	pg.Wait = max(pg.Wait, wait)
	return pg, nil
}

// httpCursor is what an [HTTPFetcher] needs to resume: the API's own
// cursor, the Link page it is on, and the validators of the response it
// got for url.
type httpCursor struct {
	api, link, url, etag, modified string
}

// httpCursorPrefix marks an encoded cursor; any other cursor is the API's
// own (an initial cursor, or a checkpoint written by hand).
const httpCursorPrefix = "intake-http1:"

// String is the API's cursor itself when there is nothing else to keep,
// and otherwise the prefix and the fields, URL-encoded.
func (c httpCursor) String() string {
	if c == (httpCursor{api: c.api}) && !strings.HasPrefix(c.api, httpCursorPrefix) {
		return c.api
	}
	v := url.Values{}
	for k, s := range map[string]string{"c": c.api, "l": c.link, "u": c.url, "e": c.etag, "m": c.modified} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return httpCursorPrefix + v.Encode()
}

func parseHTTPCursor(s string) httpCursor {
	rest, ok := strings.CutPrefix(s, httpCursorPrefix)
	if !ok {
		return httpCursor{api: s}
	}
	v, err := url.ParseQuery(rest)
	if err != nil {
		return httpCursor{} // unreadable: start from the initial page
	}
	return httpCursor{api: v.Get("c"), link: v.Get("l"), url: v.Get("u"), etag: v.Get("e"), modified: v.Get("m")}
}

func sameOrigin(a, b *url.URL) bool { return a.Scheme == b.Scheme && a.Host == b.Host }

func excerpt(body []byte) string {
	if len(body) > 256 {
		body = body[:256]
	}
	return strings.ToValidUTF8(string(body), "?")
}

// ParseRetryAfter parses a Retry-After value, delay-seconds or an HTTP
// date, into the delay from now it asks for.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
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
							if err != nil || !sameOrigin(u, base) {
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
