package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fetch"
	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/relay"
	"github.com/intakehq/intake/webhook"
)

// consumer is one way of learning about the provider's events: a real
// intake.Stream with a webhook handler, a poller, or both, and a
// subscriber that records when each event arrived.
type consumer struct {
	name   string
	stream *intake.Stream
	hook   *webhook.Handler
	poll   *poller.Poller
	srv    *http.Server
	url    string // webhook endpoint, if any

	relayStream *intake.Stream // the public relay's stream, for the relay consumer
	feed        *relay.Fetcher // the consumer's long polls of the relay

	dups atomic.Int64 // duplicates the stream suppressed

	fetcher *fetch.Fetcher // the thin consumer's fetch of objects
	thin    bool           // its events arrive thin: complete counts those fetched

	mu        sync.Mutex
	delivered map[string]time.Time
	redeliver int // the same event delivered twice: must stay 0
	order     []string
	complete  int // events handed over with the full object (thin: fetched)
}

// dupCounter counts the stream's suppressed duplicates.
type dupCounter struct {
	metric.Discard
	n *atomic.Int64
}

func (d dupCounter) Count(name, _, _ string, delta int64) {
	if name == metric.Duplicate {
		d.n.Add(delta)
	}
}

// newConsumer builds a consumer. A positive interval adds a poller of the
// provider's list API; withHook adds a webhook endpoint; trigger makes
// each webhook trigger a poll (the hybrid pattern's full-state fetch).
func newConsumer(name string, p *provider, interval time.Duration, withHook, trigger bool, log *slog.Logger) (*consumer, error) {
	c := &consumer{name: name, delivered: make(map[string]time.Time)}
	c.stream = intake.New(intake.WithLogger(log), intake.WithMetrics(dupCounter{n: &c.dups}),
		intake.WithDrainTimeout(2*time.Second))
	if interval > 0 {
		c.poll = poller.New("provider", listFetch(p.url, name),
			poller.Every(interval), poller.WithBackoff(100*time.Millisecond, 2*time.Second),
			poller.WithMaxPages(20), poller.WithLogger(log))
		c.stream.Add(c.poll)
	}
	if withHook {
		var opts []webhook.Option
		if trigger && c.poll != nil {
			opts = append(opts, webhook.OnAccepted(func(event.Event) { c.poll.Trigger() }))
		}
		c.hook = webhook.New("provider", webhook.StandardWebhooks(p.secret), append(opts, webhook.WithLogger(log))...)
		c.stream.Add(c.hook)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		mux := http.NewServeMux()
		mux.Handle("POST /webhooks", c.hook)
		c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
		c.url = "http://" + ln.Addr().String() + "/webhooks"
		go func() { _ = c.srv.Serve(ln) }()
	}
	c.record(c.stream.Subscribe())
	return c, nil
}

// listFetch polls the provider's GET /events?after=<cursor>, as consumer.
func listFetch(base, consumer string) *poller.HTTPFetcher {
	return poller.HTTP(&http.Client{Timeout: 10 * time.Second},
		func(ctx context.Context, cursor string) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events?after="+cursor, nil)
			if err == nil {
				req.Header.Set("X-Consumer", consumer)
			}
			return req, err
		},
		func(resp *http.Response, body []byte) (poller.Page, error) {
			var items []json.RawMessage
			if err := json.Unmarshal(body, &items); err != nil {
				return poller.Page{}, err
			}
			events := make([]event.Event, 0, len(items))
			for _, raw := range items {
				var head struct {
					ID        string `json:"id"`
					Type      string `json:"type"`
					CreatedMS int64  `json:"created_ms"`
				}
				if err := json.Unmarshal(raw, &head); err != nil {
					return poller.Page{}, err
				}
				events = append(events, event.Event{ID: head.ID, Type: head.Type, Time: time.UnixMilli(head.CreatedMS), Payload: raw})
			}
			if len(events) == 0 {
				return poller.Page{}, nil
			}
			return poller.Page{Events: events, Next: events[len(events)-1].ID}, nil
		})
}

func (c *consumer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.delivered)
}

// newRelayConsumer builds the relay pattern: the provider's webhooks go to
// a public relay (its own stream, verifying and keeping them in a feed);
// the consumer, with no listening socket, long-polls the relay's feed with
// its poller.
func newRelayConsumer(name string, p *provider, log *slog.Logger) (*consumer, error) {
	c := &consumer{name: name, delivered: make(map[string]time.Time)}
	feed := &relay.MemoryFeed{}
	rl := relay.New(feed, 0)
	c.relayStream = intake.New(intake.WithLogger(log), intake.WithDrainTimeout(2*time.Second))
	c.hook = webhook.New("provider", webhook.StandardWebhooks(p.secret), webhook.WithLogger(log))
	c.relayStream.Add(c.hook)
	c.relayStream.Handle(rl.Store, intake.WithWorkers(4))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks", c.hook)
	mux.Handle("GET /feed", relay.NewHandler(feed, []string{"compare"}, relay.WithLogger(log)))
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	base := "http://" + ln.Addr().String()
	c.url = base + "/webhooks"
	go func() { _ = c.srv.Serve(ln) }()

	c.stream = intake.New(intake.WithLogger(log), intake.WithMetrics(dupCounter{n: &c.dups}), intake.WithDrainTimeout(2*time.Second))
	c.feed = relay.NewFetcher(base+"/feed", "compare", relay.WithWait(30*time.Second))
	c.poll = poller.New("relay", c.feed, poller.LongPoll(), poller.KeepSource(),
		poller.WithBackoff(100*time.Millisecond, 2*time.Second), poller.WithLogger(log))
	c.stream.Add(c.poll)
	c.record(c.stream.Subscribe())
	return c, nil
}

// newThinConsumer builds the thin-webhook pattern: the provider's
// webhooks only name the object that changed, and the consumer fetches
// it on demand (package fetch) before its handler sees the event: one
// request per object and gap, within the API's rate limit.
func newThinConsumer(name string, p *provider, log *slog.Logger) (*consumer, error) {
	c := &consumer{name: name, delivered: make(map[string]time.Time), thin: true}
	c.stream = intake.New(intake.WithLogger(log), intake.WithMetrics(dupCounter{n: &c.dups}), intake.WithDrainTimeout(2*time.Second))
	c.hook = webhook.New("provider", webhook.StandardWebhooks(p.secret), webhook.WithLogger(log))
	c.stream.Add(c.hook)
	client := &http.Client{Timeout: 10 * time.Second}
	c.fetcher = fetch.New(func(e event.Event) (fetch.Object, bool) {
		var n struct {
			Object struct{ ID, URL string } `json:"object"`
		}
		if json.Unmarshal(e.Payload, &n) != nil || n.Object.ID == "" {
			return fetch.Object{}, false
		}
		return fetch.Object{ID: n.Object.ID, URL: n.Object.URL}, true
	}, fetch.HTTP(client, func(ctx context.Context, o fetch.Object) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
		if err == nil {
			req.Header.Set("X-Consumer", name)
		}
		return req, err
	}), fetch.WithLimiter(rate.NewLimiter(rate.Limit(p.cfg.apiLimit), int(max(1, p.cfg.apiLimit)))))
	c.stream.Handle(c.fetcher.Handle(func(ctx context.Context, e event.Event) error {
		c.note(e)
		return nil
	}), intake.WithWorkers(32), intake.WithRetryBackoff(50*time.Millisecond, time.Second), intake.WithMaxAttempts(50))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks", c.hook)
	c.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	c.url = "http://" + ln.Addr().String() + "/webhooks"
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

// note records an event's first arrival, and whether it came complete.
func (c *consumer) note(e event.Event) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, seen := c.delivered[e.ID]; seen {
		c.redeliver++
		return
	}
	c.delivered[e.ID] = now
	c.order = append(c.order, e.ID)
	if !c.thin || e.Meta[fetch.MetaNotification] != "" && json.Valid(e.Payload) && strings.Contains(string(e.Payload), `"data"`) {
		c.complete++
	}
}

// record takes deliveries, noting when each event first arrived.
func (c *consumer) record(deliveries <-chan *intake.Delivery) {
	go func() {
		for d := range deliveries {
			c.note(d.Event)
			d.Ack()
		}
	}()
}

// streams are the consumer's streams to run: its own, and the relay's.
func (c *consumer) streams() []*intake.Stream {
	if c.relayStream != nil {
		return []*intake.Stream{c.stream, c.relayStream}
	}
	return []*intake.Stream{c.stream}
}

func (c *consumer) close() {
	if c.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = c.srv.Shutdown(ctx)
	}
}
