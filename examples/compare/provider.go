package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/intakehq/intake/webhook"
)

// simEvent is one event of the provider's schedule, fixed by the seed.
type simEvent struct {
	id    string
	typ   string
	at    time.Duration // offset from the start
	drops []bool        // per delivery attempt: lost in the network
	body  []byte        // filled when emitted (it carries the emission time)
	thin  []byte        // the thin notification of it: which object changed
}

// objects is how many objects the events are about (customers, say): the
// thin consumer fetches each object's state, once per object and gap.
const objects = 20

// object is the id of the object event e is about.
func (e *simEvent) object() string {
	n, _ := strconv.Atoi(strings.TrimPrefix(e.id, "evt_"))
	return fmt.Sprintf("obj_%03d", n%objects)
}

var eventTypes = []string{"invoice.paid", "customer.created", "charge.refunded", "subscription.updated"}

// schedule draws a Poisson process of rate events per second over d, and
// for each event whether each delivery attempt is dropped.
func schedule(seed uint64, perSecond float64, d time.Duration, drop float64, attempts int) []*simEvent {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var events []*simEvent
	var t time.Duration
	for i := 1; ; i++ {
		t += time.Duration(rng.ExpFloat64() / perSecond * float64(time.Second))
		if t >= d {
			return events
		}
		e := &simEvent{id: fmt.Sprintf("evt_%06d", i), typ: eventTypes[rng.IntN(len(eventTypes))], at: t}
		for range attempts {
			e.drops = append(e.drops, rng.Float64() < drop)
		}
		events = append(events, e)
	}
}

// counters are what the provider saw of one consumer.
type counters struct {
	apiRequests, notModified, rateLimited, emptyPolls int64
	webhooks, webhooksDropped, unrecovered            int64
	bytes                                             int64
	perSecond                                         map[int]int64 // requests by second since start
}

// provider simulates an outside system on 127.0.0.1: it emits events,
// delivers them as signed webhooks over a lossy network with a retry
// schedule, and serves them from a list API with ETags, Link pagination
// and a rate limit.
type provider struct {
	cfg    config
	secret string
	events []*simEvent
	srv    *http.Server
	url    string
	client *http.Client

	mu       sync.Mutex
	start    time.Time            // of the schedule
	emitted  int                  // events[:emitted] are visible in the API
	happened map[string]time.Time // when each event happened
	seen     map[string]*counters
	limiters map[string]*rate.Limiter
	state    map[string]string // object → the id of the last event about it
	inflight sync.WaitGroup
}

const pageSize = 50

func newProvider(cfg config, secret string) (*provider, error) {
	p := &provider{
		cfg:      cfg,
		secret:   secret,
		events:   schedule(cfg.seed, cfg.rate, cfg.duration, cfg.drop, cfg.retries+1),
		happened: make(map[string]time.Time),
		seen:     make(map[string]*counters),
		limiters: make(map[string]*rate.Limiter),
		state:    make(map[string]string),
		client: &http.Client{
			Timeout:   5 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64},
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.url = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events", p.serveList)
	mux.HandleFunc("GET /objects/{id}", p.serveObject)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *provider) counters(consumer string) *counters {
	c := p.seen[consumer]
	if c == nil {
		c = &counters{perSecond: map[int]int64{}}
		p.seen[consumer] = c
	}
	return c
}

// count updates a consumer's counters; request says whether an HTTP
// request was made, for the requests-over-time chart.
func (p *provider) count(consumer string, request bool, f func(c *counters)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.counters(consumer)
	if request {
		c.perSecond[int(time.Since(p.start)/time.Second)]++
	}
	f(c)
}

// run emits the schedule, delivering each event to every webhook URL,
// and returns when the last event is emitted. Deliveries and their retries
// continue; wait for them with p.inflight.
func (p *provider) run(ctx context.Context, start time.Time, hooks map[string]string) {
	p.mu.Lock()
	p.start = start
	p.mu.Unlock()
	for i, e := range p.events {
		t := time.NewTimer(time.Until(start.Add(e.at)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		now := time.Now()
		e.body = p.body(e, now)
		e.thin = []byte(fmt.Sprintf(`{"id":%q,"type":%q,"created_ms":%d,"object":{"id":%q,"url":"%s/objects/%s"}}`,
			e.id, e.typ, now.UnixMilli(), e.object(), p.url, e.object()))
		p.mu.Lock()
		p.state[e.object()] = e.id
		p.happened[e.id] = now
		p.emitted = i + 1
		p.mu.Unlock()
		for consumer, url := range hooks {
			p.inflight.Add(1)
			go func() {
				defer p.inflight.Done()
				p.deliver(ctx, consumer, url, e)
			}()
		}
	}
}

func (p *provider) body(e *simEvent, at time.Time) []byte {
	head := fmt.Sprintf(`{"id":%q,"type":%q,"created_ms":%d,"data":{"note":"`, e.id, e.typ, at.UnixMilli())
	tail := `"}}`
	pad := max(0, p.cfg.size-len(head)-len(tail))
	return []byte(head + strings.Repeat("x", pad) + tail)
}

// retryDelay is the provider's schedule after the k-th failed attempt:
// 250 ms, 1 s, 4 s, 16 s… — real providers' hours compressed to the run.
func retryDelay(k int) time.Duration {
	return time.Duration(250*math.Pow(4, float64(k-1))) * time.Millisecond
}

func (p *provider) deliver(ctx context.Context, consumer, url string, e *simEvent) {
	for attempt := range len(e.drops) {
		if attempt > 0 && !sleepCtx(ctx, retryDelay(attempt)) {
			return
		}
		if !sleepCtx(ctx, p.cfg.latency) { // the network's one-way delay
			return
		}
		if e.drops[attempt] {
			p.count(consumer, false, func(c *counters) { c.webhooksDropped++ })
			continue
		}
		body := e.body
		if consumer == "thin" {
			body = e.thin
		}
		h, err := webhook.SignStandardWebhooks(p.secret, e.id, time.Now(), body)
		if err != nil {
			panic(err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		req.Header = h
		req.Header.Set("Content-Type", "application/json")
		resp, err := p.client.Do(req)
		p.count(consumer, true, func(c *counters) { c.webhooks++; c.bytes += int64(len(body)) })
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return
		}
	}
	p.count(consumer, false, func(c *counters) { c.unrecovered++ })
}

// serveList is GET /events?after=<id>: the events after the cursor, oldest
// first, at most pageSize, with a Link to the next page, an ETag, and a
// rate limit per consumer.
func (p *provider) serveList(w http.ResponseWriter, r *http.Request) {
	consumer := r.Header.Get("X-Consumer")
	sleepCtx(r.Context(), p.cfg.latency)
	lim := p.limiter(consumer)
	p.mu.Lock()
	visible := p.events[:p.emitted]
	p.mu.Unlock()

	if !lim.Allow() {
		p.count(consumer, true, func(c *counters) { c.apiRequests++; c.rateLimited++ })
		w.Header().Set("Retry-After", "1")
		http.Error(w, "rate limited", http.StatusTooManyRequests)
		return
	}
	after := r.URL.Query().Get("after")
	from := 0
	if after != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(after, "evt_"))
		if err != nil {
			http.Error(w, "bad cursor", http.StatusBadRequest)
			return
		}
		// ids are evt_<index+1> in emission order
		from = min(n, len(visible))
	}
	page := visible[from:]
	more := len(page) > pageSize
	if more {
		page = page[:pageSize]
	}
	last := after
	if len(page) > 0 {
		last = page[len(page)-1].id
	}
	etag := fmt.Sprintf(`"%s-%s-%d"`, after, last, len(page))
	if r.Header.Get("If-None-Match") == etag {
		p.count(consumer, true, func(c *counters) { c.apiRequests++; c.notModified++ })
		w.WriteHeader(http.StatusNotModified)
		return
	}
	items := make([]json.RawMessage, len(page))
	for i, e := range page {
		items[i] = e.body
	}
	out, _ := json.Marshal(items)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", etag)
	if more {
		w.Header().Set("Link", fmt.Sprintf(`<%s/events?after=%s>; rel="next"`, p.url, last))
	}
	_, _ = w.Write(out)
	p.count(consumer, true, func(c *counters) {
		c.apiRequests++
		c.bytes += int64(len(out))
		if len(page) == 0 {
			c.emptyPolls++
		}
	})
}

// limiter is the API's rate limit of one consumer.
func (p *provider) limiter(consumer string) *rate.Limiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	lim := p.limiters[consumer]
	if lim == nil {
		lim = rate.NewLimiter(rate.Limit(p.cfg.apiLimit), int(max(1, p.cfg.apiLimit)))
		p.limiters[consumer] = lim
	}
	return lim
}

// serveObject is GET /objects/{id}: the object's current state (the last
// event about it, padded to the event size), rate-limited per consumer as
// the list API is.
func (p *provider) serveObject(w http.ResponseWriter, r *http.Request) {
	consumer := r.Header.Get("X-Consumer")
	sleepCtx(r.Context(), p.cfg.latency)
	if !p.limiter(consumer).Allow() {
		p.count(consumer, true, func(c *counters) { c.apiRequests++; c.rateLimited++ })
		w.Header().Set("Retry-After", "1")
		http.Error(w, "rate limited", http.StatusTooManyRequests)
		return
	}
	id := r.PathValue("id")
	p.mu.Lock()
	last, ok := p.state[id]
	p.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	head := fmt.Sprintf(`{"id":%q,"last_event":%q,"data":{"note":"`, id, last)
	tail := `"}}`
	out := []byte(head + strings.Repeat("x", max(0, p.cfg.size-len(head)-len(tail))) + tail)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
	p.count(consumer, true, func(c *counters) { c.apiRequests++; c.bytes += int64(len(out)) })
}

func (p *provider) snapshot(consumer string) counters {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := *p.counters(consumer)
	c.perSecond = make(map[int]int64, len(p.seen[consumer].perSecond))
	for k, v := range p.seen[consumer].perSecond {
		c.perSecond[k] = v
	}
	return c
}

func (p *provider) happenedAt(id string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.happened[id]
	return t, ok
}

func (p *provider) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
	p.client.CloseIdleConnections()
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
