package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

// Mount a GitHub webhook handler in a ServeMux and feed a stream. The same
// delivery sent twice is acknowledged twice and delivered once.
func Example() {
	const secret = "It's a Secret to Everybody"
	stream := intake.New(intake.WithLogger(quiet))
	hook := webhook.New("github", webhook.GitHub(secret), webhook.WithLogger(quiet))
	stream.Add(hook)
	deliveries := stream.Subscribe()

	mux := http.NewServeMux()
	mux.Handle("POST /hooks/github", hook)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- stream.Run(ctx) }()

	body := []byte(`{"action":"opened"}`)
	send := func() int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks/github", bytes.NewReader(body))
		req.Header = webhook.SignGitHub(secret, "72d3162e", "issues", body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	code := send()
	for code == http.StatusServiceUnavailable { // the stream is starting
		time.Sleep(time.Millisecond)
		code = send()
	}
	d := <-deliveries
	d.Ack() // commits the event's key: a later copy is a duplicate
	e := d.Event
	fmt.Println(code, e.Source, e.ID, e.Type, e.Via)
	fmt.Println(send()) // a retry of the same delivery

	cancel()
	fmt.Println(<-done)
	// Output:
	// 202 github 72d3162e issues webhook
	// 200
	// <nil>
}

// A Stripe verifier checks Stripe-Signature and takes the id from the body.
func ExampleStripe() {
	const secret = "whsec_test"
	body := []byte(`{"id":"evt_1","type":"invoice.paid","created":1700000000}`)
	h := webhook.SignStripe(secret, time.Now(), body)

	e, err := webhook.Stripe(secret).Verify(h, body)
	fmt.Println(e.ID, e.Type, err)

	_, err = webhook.Stripe("whsec_other").Verify(h, body)
	fmt.Println(errors.Is(err, webhook.ErrSignatureMismatch))
	// Output:
	// evt_1 invoice.paid <nil>
	// true
}

// Each tenant (here named by the path) signs with its own secrets,
// looked up per tenant and cached; a secret with a NotAfter verifies until
// then, so rotation overlaps. The tenant is part of the event and its key.
func ExamplePerTenant() {
	rotated := time.Now().Add(24 * time.Hour) // the old secret's last day
	lookup := func(_ context.Context, tenant string) ([]webhook.Secret, error) {
		switch tenant {
		case "acme":
			return []webhook.Secret{{Value: "whsec_new"}, {Value: "whsec_old", NotAfter: rotated}}, nil
		}
		return nil, fmt.Errorf("%q: %w", tenant, webhook.ErrUnknownTenant)
	}
	hook := webhook.New("stripe", webhook.PerTenant(webhook.TenantFromPath("/hooks/stripe/"), lookup, webhook.Stripe),
		webhook.WithLogger(quiet))
	stream := intake.New(intake.WithLogger(quiet))
	stream.Add(hook)
	deliveries := stream.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go stream.Run(ctx)
	<-stream.Started()

	send := func(tenant, secret, id string) int {
		body := []byte(`{"id":"` + id + `","type":"invoice.paid"}`)
		r := httptest.NewRequest("POST", "/hooks/stripe/"+tenant, bytes.NewReader(body))
		for k, v := range webhook.SignStripe(secret, time.Now(), body) {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		hook.ServeHTTP(w, r)
		return w.Code
	}
	fmt.Println("old secret:", send("acme", "whsec_old", "evt_1"))
	fmt.Println("new secret:", send("acme", "whsec_new", "evt_2"))
	fmt.Println("another tenant's secret:", send("acme", "whsec_globex", "evt_3"))
	fmt.Println("unknown tenant:", send("initech", "whsec_new", "evt_4"))
	d := <-deliveries
	fmt.Println(d.Event.ID, "of", d.Event.Meta[event.MetaTenant], "key", d.Event.Key())
	d.Ack()
	// Output:
	// old secret: 202
	// new secret: 202
	// another tenant's secret: 401
	// unknown tenant: 404
	// evt_1 of acme key @4:acme:6:stripe:evt_1
}
