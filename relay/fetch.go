package relay

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
)

// Fetcher long-polls a relay's feed: the [poller.Fetcher] of a consumer
// behind a firewall. Use it with [poller.LongPoll], so that the poller
// asks again as soon as an answer comes, and [poller.KeepSource], so that
// events keep the source they had at the relay:
//
//	feed := relay.NewFetcher("https://relay.example.com/feed", os.Getenv("RELAY_TOKEN"))
//	stream.Add(poller.New("relay", feed, poller.LongPoll(), poller.KeepSource()))
//
// The cursor is the feed's; a cursor the relay no longer keeps is
// [poller.ErrCursorExpired], and the poller starts over.
type Fetcher struct {
	url      string
	token    string
	wait     time.Duration
	limit    int
	client   *http.Client
	requests atomic.Int64
}

// FetcherOption configures a [Fetcher].
type FetcherOption func(*Fetcher)

// WithWait sets how long the relay may hold a request. Defaults to 30
// seconds.
func WithWait(d time.Duration) FetcherOption {
	if d < 0 {
		panic("relay: WithWait must not be negative")
	}
	return func(f *Fetcher) { f.wait = d }
}

// WithLimit sets the items asked for in one request. Defaults to 100.
func WithLimit(n int) FetcherOption {
	if n <= 0 {
		panic("relay: WithLimit must be positive")
	}
	return func(f *Fetcher) { f.limit = n }
}

// WithClient sets the HTTP client; its timeout, if any, must exceed the
// wait. Defaults to a client with no timeout of its own (each request is
// bounded by the wait plus 15 seconds).
func WithClient(c *http.Client) FetcherOption { return func(f *Fetcher) { f.client = c } }

// NewFetcher returns a fetcher of the feed at feedURL with token.
func NewFetcher(feedURL, token string, opts ...FetcherOption) *Fetcher {
	f := &Fetcher{url: feedURL, token: token, wait: 30 * time.Second, limit: DefaultLimit, client: &http.Client{}}
	for _, o := range opts {
		o(f)
	}
	return f
}

// Requests returns the requests made so far.
func (f *Fetcher) Requests() int64 { return f.requests.Load() }

// Fetch implements [poller.Fetcher].
func (f *Fetcher) Fetch(ctx context.Context, cursor string) (poller.Page, error) {
	ctx, cancel := context.WithTimeout(ctx, f.wait+15*time.Second)
	defer cancel()
	u, err := url.Parse(f.url)
	if err != nil {
		return poller.Page{}, fmt.Errorf("relay: feed URL: %w", err)
	}
	q := u.Query()
	if cursor != "" {
		q.Set("after", cursor)
	}
	q.Set("limit", strconv.Itoa(f.limit))
	q.Set("wait", f.wait.String())
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return poller.Page{}, err
	}
	req.Header.Set("Authorization", "Bearer "+f.token)
	f.requests.Add(1)
	resp, err := f.client.Do(req)
	if err != nil {
		return poller.Page{}, fmt.Errorf("relay: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return poller.Page{}, fmt.Errorf("relay: read answer: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusGone:
		return poller.Page{}, fmt.Errorf("%w: the relay no longer keeps cursor %s", poller.ErrCursorExpired, cursor)
	default:
		return poller.Page{}, &poller.StatusError{Code: resp.StatusCode, Body: string(body[:min(len(body), 256)])}
	}
	var ans struct {
		Cursor string `json:"cursor"`
		Items  []struct {
			Event string `json:"event"`
		} `json:"items"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return poller.Page{}, fmt.Errorf("relay: decode answer: %w", err)
	}
	var pg poller.Page
	for _, it := range ans.Items {
		enc, err := base64.StdEncoding.DecodeString(it.Event)
		if err != nil {
			return poller.Page{}, fmt.Errorf("relay: decode item: %w", err)
		}
		var e event.Event
		if err := e.UnmarshalBinary(enc); err != nil {
			return poller.Page{}, fmt.Errorf("relay: decode item: %w", err)
		}
		pg.Events = append(pg.Events, e)
	}
	pg.Next = ans.Cursor
	pg.More = len(ans.Items) >= f.limit
	return pg, nil
}
