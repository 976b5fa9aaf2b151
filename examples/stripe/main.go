// Command stripe receives Stripe-style webhooks and reconciles them with a
// poll of the Events API, against a local fake of Stripe on 127.0.0.1.
//
// The webhook handler (Stripe's signature scheme) and the poller share the
// source name "stripe", and both take the event's id from Stripe's "evt_…"
// id, so the stream's idempotency store delivers each event once, whichever
// path brings it first: webhooks for speed, the poll for what they dropped.
//
//	go run ./examples/stripe [-events 30] [-drop 0.3]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/webhook"
)

const secret = "whsec_local_fake_stripe_endpoint_secret"

func main() {
	n := flag.Int("events", 30, "events the fake Stripe creates")
	drop := flag.Float64("drop", 0.3, "fraction of webhooks the network loses")
	flag.Parse()
	res, err := run(context.Background(), *n, *drop, 1)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stripe:", err)
		os.Exit(1)
	}
	fmt.Printf("%d events, %d webhooks lost: %d delivered by webhook, %d by the Events API poll; %d copies suppressed, %d delivered twice; %d paid in all\n",
		*n, res.dropped, res.via[event.Webhook], res.via[event.Poll], res.suppressed, res.twice, res.paid)
	for _, id := range res.order {
		fmt.Printf("  %s  via %s\n", id, res.byID[id])
	}
}

// stripeEvent is a Stripe event whose data.object is a T.
type stripeEvent[T any] struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		Object T `json:"object"`
	} `json:"data"`
}

// invoice is the part of a Stripe invoice this example reads.
type invoice struct {
	ID         string `json:"id"`
	AmountPaid int    `json:"amount_paid"`
}

type result struct {
	paid       int // the invoices' amount_paid, summed
	byID       map[string]event.Via
	order      []string
	via        map[event.Via]int
	suppressed int
	twice      int
	dropped    int // webhooks lost on the way
}

// fakeStripe creates events, sends each as a signed webhook (losing some),
// and serves GET /v1/events?ending_before=<id>: the events newer than the
// cursor, newest first, 10 a page, with has_more.
type fakeStripe struct {
	mu     sync.Mutex
	events [][]byte // in creation order
	ids    []string
}

func (f *fakeStripe) create(i int) []byte {
	id := fmt.Sprintf("evt_%04d", i)
	body, _ := json.Marshal(map[string]any{
		"id": id, "object": "event", "type": "invoice.paid", "created": time.Now().Unix(),
		"data": map[string]any{"object": map[string]any{"id": "in_" + strconv.Itoa(i), "amount_paid": 100 * i}},
	})
	f.mu.Lock()
	f.events = append(f.events, body)
	f.ids = append(f.ids, id)
	f.mu.Unlock()
	return body
}

func (f *fakeStripe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	from := 0
	if cur := r.URL.Query().Get("ending_before"); cur != "" {
		from = slices.Index(f.ids, cur) + 1
	}
	page := f.events[from:]
	hasMore := len(page) > 10
	if hasMore {
		page = page[:10]
	}
	data := make([]json.RawMessage, len(page))
	for i, e := range page {
		data[len(page)-1-i] = e // newest first, as Stripe lists them
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "has_more": hasMore})
}

func run(ctx context.Context, n int, drop float64, seed uint64) (*result, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	fake := &fakeStripe{}
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	api := &http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	go func() { _ = api.Serve(apiLn) }()
	defer api.Close()
	apiURL := "http://" + apiLn.Addr().String()

	stream := intake.New(intake.WithLogger(quiet))
	hook := webhook.New("stripe", webhook.Stripe(secret), webhook.WithLogger(quiet))
	events := poller.New("stripe", poller.HTTP(nil,
		func(ctx context.Context, cursor string) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, apiURL+"/v1/events?limit=10&ending_before="+cursor, nil)
			if err == nil {
				req.Header.Set("Authorization", "Bearer sk_test_local")
			}
			return req, err
		},
		decodeStripeList,
	), poller.Every(300*time.Millisecond), poller.WithLogger(quiet))
	stream.Add(hook, events)

	hookLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /stripe/webhook", hook)
	hooks := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	go func() { _ = hooks.Serve(hookLn) }()
	defer hooks.Close()
	hookURL := "http://" + hookLn.Addr().String() + "/stripe/webhook"

	res := &result{byID: map[string]event.Via{}, via: map[event.Via]int{}}
	got := make(chan struct{}, n)
	var mu sync.Mutex
	// Handlers by event type, the payload decoded: an invoice that does
	// not decode is dead-lettered at once; other types are acked.
	router := intake.NewRouter().
		On("invoice.paid", intake.JSON(func(ctx context.Context, e event.Event, ev stripeEvent[invoice]) error {
			mu.Lock()
			if _, dup := res.byID[e.ID]; dup {
				res.twice++
			} else {
				res.byID[e.ID] = e.Via
				res.order = append(res.order, e.ID)
				res.via[e.Via]++
				res.paid += ev.Data.Object.AmountPaid
			}
			mu.Unlock()
			got <- struct{}{}
			return nil
		})).
		Otherwise(intake.AckUnrouted)
	stream.Handle(router.Handle)

	// Run once every subscription is made: a Run that starts before
	// Handle finds none and returns at once (a race CI caught).
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- stream.Run(runCtx) }()
	<-stream.Started()

	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	for i := 1; i <= n; i++ {
		body := fake.create(i)
		if rng.Float64() < drop {
			res.dropped++
			continue // lost on the way: only the poll can find it
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hookURL, bytes.NewReader(body))
		req.Header = webhook.SignStripe(secret, time.Now(), body)
		for {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable {
					break
				}
			}
			select {
			case err := <-done:
				return nil, fmt.Errorf("the stream stopped: %v", err)
			case <-time.After(5 * time.Millisecond): // a 503: the queue is full, or the store down
			}
			req, _ = http.NewRequestWithContext(ctx, http.MethodPost, hookURL, bytes.NewReader(body))
			req.Header = webhook.SignStripe(secret, time.Now(), body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	timeout := time.After(10 * time.Second)
	for range n {
		select {
		case <-got:
		case <-timeout:
			return nil, fmt.Errorf("only %d of %d events delivered", len(res.byID), n)
		}
	}
	time.Sleep(700 * time.Millisecond) // two more polls: their copies are suppressed
	cancel()
	if err := <-done; err != nil {
		return nil, err
	}
	st := events.Stats()
	res.suppressed = int(st.Duplicates)
	return res, nil
}

// decodeStripeList reads a page of Stripe's Events API: newest first, with
// has_more; the cursor is the newest id (ending_before).
func decodeStripeList(resp *http.Response, body []byte) (poller.Page, error) {
	var list struct {
		Data    []json.RawMessage `json:"data"`
		HasMore bool              `json:"has_more"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return poller.Page{}, err
	}
	events := make([]event.Event, 0, len(list.Data))
	for i := len(list.Data) - 1; i >= 0; i-- { // oldest first
		var head struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Created int64  `json:"created"`
		}
		if err := json.Unmarshal(list.Data[i], &head); err != nil {
			return poller.Page{}, err
		}
		events = append(events, event.Event{ID: head.ID, Type: head.Type, Time: time.Unix(head.Created, 0), Payload: list.Data[i]})
	}
	if len(events) == 0 {
		return poller.Page{}, nil
	}
	return poller.Page{Events: events, Next: events[len(events)-1].ID, More: list.HasMore}, nil
}
