package intake_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// An operator's day: an event that keeps failing is dead, not lost; list
// it with its error, fix the handler, replay it.
func ExampleStream_List() {
	s := intake.New(intake.WithLogger(quiet))
	fixed := make(chan struct{})
	handled := make(chan string, 1)
	s.Handle(func(ctx context.Context, e event.Event) error {
		select {
		case <-fixed:
			handled <- e.ID
			return nil
		default:
			return errors.New("customer cus_9 not found")
		}
	}, intake.WithName("billing"), intake.WithMaxAttempts(3), intake.WithRetryBackoff(time.Millisecond, time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for errors.Is(s.Put(ctx, event.Event{Source: "stripe", ID: "evt_1", Type: "invoice.paid"}), event.ErrNotRunning) {
		time.Sleep(time.Millisecond)
	}

	var dead []dedupe.Record
	for len(dead) == 0 {
		time.Sleep(time.Millisecond)
		dead, _ = s.List(ctx, dedupe.Filter{State: dedupe.Dead, Source: "stripe"})
	}
	r := dead[0]
	fmt.Printf("%s %s %s after %d attempts in %s: %s\n", r.State, r.Key, r.Event.Type, r.Attempts, r.Failure.Subscription, r.Failure.Err)

	close(fixed) // the handler is fixed
	if err := s.Replay(ctx, r.Key); err != nil {
		fmt.Println(err)
	}
	fmt.Println("handled", <-handled)
	cancel()
	<-done
	// Output:
	// dead 6:stripe:evt_1 invoice.paid after 3 attempts in billing: customer cus_9 not found
	// handled evt_1
}

// Mount the readiness check where your probes look.
func ExampleStream_HealthHandler() {
	s := intake.New(intake.WithLogger(quiet), intake.WithQueueSize(100))
	s.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for !s.Health().Running {
		time.Sleep(time.Millisecond)
	}
	rec := httptest.NewRecorder()
	s.HealthHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	fmt.Print(rec.Code, " ", rec.Body.String())
	cancel()
	<-done
	// Output: 200 {"ready":true,"running":true,"store":"ok","queue_depth":0,"queue_capacity":100}
}
