package order_test

import (
	"context"
	"fmt"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/order"
)

// Events about one Stripe subscription arrive out of order: the stream
// hands them out one at a time, and the subscription given WithSkipStale
// skips the state older than one it applied.
func Example() {
	s := intake.New(intake.WithOrderKey(order.Stripe), intake.WithVersion(order.StripeVersion))
	handled := make(chan string, 3)
	s.Handle(func(ctx context.Context, e event.Event) error {
		handled <- e.ID
		return nil
	}, intake.WithSkipStale(), intake.WithWorkers(16))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	<-s.Started()
	for _, e := range []struct {
		id      string
		created int
	}{{"evt_1", 100}, {"evt_3", 300}, {"evt_2", 200}} {
		payload := fmt.Sprintf(`{"id":%q,"created":%d,"data":{"object":{"id":"sub_9"}}}`, e.id, e.created)
		_ = s.Put(ctx, event.Event{Source: "stripe", ID: e.id, Payload: []byte(payload)})
	}
	fmt.Println(<-handled)
	fmt.Println(<-handled)
	// evt_2 is skipped, not handled: wait for the count.
	for deadline := time.Now().Add(10 * time.Second); staleCount(s) == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	fmt.Println("stale:", staleCount(s))
	// Output:
	// evt_1
	// evt_3
	// stale: 1
}

func staleCount(s *intake.Stream) (n int64) {
	for _, st := range s.Stats() {
		n += st.Stale
	}
	return n
}
