package intake_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
)

// A stream with one managed handler. The second Put of the same event is
// suppressed as a duplicate, whichever source it comes from.
func ExampleStream_Handle() {
	s := intake.New(intake.WithLogger(quiet))
	handled := make(chan string, 10)
	s.Handle(func(ctx context.Context, e event.Event) error {
		handled <- e.Source + "/" + e.ID
		return nil
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	e := event.Event{Source: "shop", ID: "order_1", Type: "order.paid"}
	for errors.Is(s.Put(ctx, e), event.ErrNotRunning) {
		time.Sleep(time.Millisecond) // Run is starting
	}
	fmt.Println(<-handled)

	e.Via = event.Poll // the same event, polled later
	err := s.Put(ctx, e)
	for errors.Is(err, event.ErrPending) { // the handler's ack is on its way
		time.Sleep(time.Millisecond)
		err = s.Put(ctx, e)
	}
	fmt.Println(errors.Is(err, event.ErrDuplicate))

	cancel()
	fmt.Println(<-done)
	// Output:
	// shop/order_1
	// true
	// <nil>
}

// Subscribe returns a channel; each delivery must be acked or nacked.
func ExampleStream_Subscribe() {
	s := intake.New(intake.WithLogger(quiet))
	deliveries := s.Subscribe(intake.WithTypes("invoice.paid"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()

	e := event.Event{Source: "billing", ID: "in_1", Type: "invoice.paid"}
	for errors.Is(s.Put(ctx, e), event.ErrNotRunning) {
		time.Sleep(time.Millisecond)
	}
	d := <-deliveries
	fmt.Println(d.Event.ID, d.Attempt)
	d.Ack()

	cancel()
	<-done
	// Output: in_1 1
}

// Handlers by event type: exact routes, prefix routes, typed decoding,
// and what to do with a type no route takes.
func ExampleRouter() {
	type invoice struct {
		ID     string `json:"id"`
		Amount int    `json:"amount_paid"`
	}
	r := intake.NewRouter().
		On("invoice.paid", intake.JSON(func(ctx context.Context, e event.Event, inv invoice) error {
			fmt.Println("paid:", inv.ID, inv.Amount)
			return nil
		})).
		OnPrefix("customer.", func(ctx context.Context, e event.Event) error {
			fmt.Println("customer event:", e.Type)
			return nil
		}).
		Otherwise(intake.AckUnrouted) // the default dead-letters them (intake.ErrNoRoute)
	ctx := context.Background()
	_ = r.Handle(ctx, event.Event{Type: "invoice.paid", Payload: []byte(`{"id":"in_1","amount_paid":4200}`)})
	_ = r.Handle(ctx, event.Event{Type: "customer.deleted"})
	_ = r.Handle(ctx, event.Event{Type: "payout.paid"})
	err := r.Handle(ctx, event.Event{Type: "invoice.paid", Payload: []byte(`{"amount_paid":"lots"}`)})
	fmt.Println("unrouted:", r.Unrouted())
	var typeErr *json.UnmarshalTypeError
	fmt.Println("decode error, dead-lettered at once:", errors.As(err, &typeErr))
	// stream.Handle(r.Handle) runs it for every event.

	// Output:
	// paid: in_1 4200
	// customer event: customer.deleted
	// unrouted: 1
	// decode error, dead-lettered at once: true
}
