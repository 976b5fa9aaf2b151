package nats_test

import (
	"context"
	"net/http"

	"github.com/nats-io/nats.go"

	"github.com/intakehq/intake"
	intakenats "github.com/intakehq/intake/backend/nats"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

// Each replica of a service opens its own holder on one JetStream queue
// (three copies of every stream on a three-node cluster), mounts the
// webhook handler and runs the stream; a replica killed mid-delivery has
// its events handled by the others within the heartbeat (5 s).
func ExampleNewQueue() {
	ctx := context.Background()
	nc, err := nats.Connect("nats://n1:4222,nats://n2:4222,nats://n3:4222", nats.MaxReconnects(-1))
	if err != nil {
		return // no cluster here
	}
	defer nc.Close()
	q, err := intakenats.NewQueue(ctx, nc, intakenats.WithReplicas(3))
	if err != nil {
		return
	}
	defer q.Close() // its heartbeat deleted: the others adopt what is left at once

	stream := intake.New(intake.WithQueue(q))
	hook := webhook.New("stripe", webhook.Stripe("whsec_…"))
	stream.Add(hook)
	stream.Handle(func(ctx context.Context, e event.Event) error {
		return nil // the effect, once per event
	})
	http.Handle("POST /webhooks/stripe", hook)
	go func() { _ = stream.Run(ctx) }()
}
