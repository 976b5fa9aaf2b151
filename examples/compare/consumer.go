package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/poller"
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

	dups atomic.Int64 // duplicates the stream suppressed

	mu        sync.Mutex
	delivered map[string]time.Time
	redeliver int // the same event delivered twice: must stay 0
	order     []string
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
	deliveries := c.stream.Subscribe()
	go func() {
		for d := range deliveries {
			now := time.Now()
			c.mu.Lock()
			if _, seen := c.delivered[d.Event.ID]; seen {
				c.redeliver++
			} else {
				c.delivered[d.Event.ID] = now
				c.order = append(c.order, d.Event.ID)
			}
			c.mu.Unlock()
			d.Ack()
		}
	}()
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

func (c *consumer) close() {
	if c.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = c.srv.Shutdown(ctx)
	}
}
