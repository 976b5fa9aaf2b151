package fleet_test

import (
	"context"
	"fmt"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fleet"
	"github.com/intakehq/intake/poller"
)

// A fleet polls each customer's account of one API from a bounded pool of
// workers; a refused credential pauses its connection and calls the hook
// once. With backend/postgres, pass pg.Connections() instead of the
// Memory store and run the same code on every replica.
func Example() {
	store := &fleet.Memory{}
	paused := make(chan string, 1)
	f := fleet.New("accounts", store,
		fleet.WithScan(10*time.Millisecond),
		fleet.OnPause(func(_ context.Context, c fleet.Connection) { paused <- c.ID + ": " + c.Reason }))
	f.Source("shop", func(ctx context.Context, c fleet.Connection, cursor string) (poller.Page, error) {
		// Resolve c.Credential, then ask the tenant's API for what is
		// after cursor.
		if c.Credential == "" {
			return poller.Page{}, fmt.Errorf("token gone: %w", fleet.ErrUnauthorized)
		}
		if cursor != "" {
			return poller.Page{}, nil // nothing new
		}
		return poller.Page{Events: []event.Event{{ID: "order-1", Type: "order.created", Payload: []byte(`{}`)}}, Next: "order-1"}, nil
	})

	s := intake.New()
	s.Add(f)
	done := make(chan struct{})
	s.Handle(func(_ context.Context, e event.Event) error {
		fmt.Println("handled", e.ID, "of", e.Meta[fleet.MetaConnection])
		close(done)
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)

	_ = f.Add(ctx, fleet.Connection{ID: "store-42", Source: "shop", Interval: 50 * time.Millisecond, Credential: "vault:store-42"})
	<-done
	_ = store.Add(ctx, fleet.Connection{ID: "store-43", Source: "shop"}, 0) // due at once, no credential
	fmt.Println("paused", <-paused)
	// Output:
	// handled order-1 of store-42
	// paused store-43: token gone: fleet: credential refused
}
