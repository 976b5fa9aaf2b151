package intake_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/webhook"
)

// The README's quick start, runnable: a Stripe webhook handler mounted in
// a net/http mux, a reconciliation poller of the same source, and a
// subscription. The event arrives by webhook and is then polled: the
// stream delivers it once.
func Example_quickStart() {
	const secret = "whsec_test"                    // os.Getenv("STRIPE_WEBHOOK_SECRET")
	stream := intake.New(intake.WithLogger(quiet)) // memory store and bounded queue by default

	hook := webhook.New("stripe", webhook.Stripe(secret), webhook.WithLogger(quiet))
	sent := make(chan struct{})
	events := poller.New("stripe", fetchStripeEvents(sent), poller.Every(50*time.Millisecond), poller.WithLogger(quiet)) // reconciliation
	stream.Add(hook, events)                                                                                             // same source name: the stream dedupes across both paths

	mux := http.NewServeMux()
	mux.Handle("POST /hooks/stripe", hook)
	srv := httptest.NewServer(mux) // your http.Server, with ReadHeaderTimeout and ReadTimeout
	defer srv.Close()

	deliveries := stream.Subscribe()
	got := make(chan string, 10)
	go func() {
		for d := range deliveries { // closed when Run returns
			got <- fmt.Sprintf("%s %s via %s", d.Event.Type, d.Event.ID, d.Event.Via)
			d.Ack() // or d.Nack(err): delivered again after a backoff
		}
	}()
	ctx, stop := context.WithCancel(context.Background()) // signal.NotifyContext(ctx, os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- stream.Run(ctx) }() // returns after draining, with no goroutine left

	// Stripe sends the event; the handler answers 202 once it is stored.
	body := []byte(`{"id":"evt_1","type":"invoice.paid","created":1700000000}`)
	for {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/stripe", bytes.NewReader(body))
		req.Header = webhook.SignStripe(secret, time.Now(), body)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				close(sent)
				break
			}
		}
		time.Sleep(time.Millisecond) // 503 until Run has started
	}
	fmt.Println(<-got)
	time.Sleep(200 * time.Millisecond) // the poller finds evt_1 again: a duplicate
	stop()
	fmt.Println(<-done, len(got), events.Stats().Duplicates > 0)
	// Output:
	// invoice.paid evt_1 via webhook
	// <nil> 0 true
}

// fetchStripeEvents stands for a poller.HTTP fetch of Stripe's Events API
// (see examples/stripe): it finds evt_1 too, once the webhook was sent.
func fetchStripeEvents(sent <-chan struct{}) poller.FetchFunc {
	return func(ctx context.Context, cursor string) (poller.Page, error) {
		select {
		case <-sent:
		case <-ctx.Done():
			return poller.Page{}, ctx.Err()
		}
		if cursor != "" {
			return poller.Page{}, nil
		}
		e := event.Event{ID: "evt_1", Type: "invoice.paid", Payload: []byte(`{"id":"evt_1"}`)}
		return poller.Page{Events: []event.Event{e}, Next: "evt_1"}, nil
	}
}
