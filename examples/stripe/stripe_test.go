package main

import (
	"context"
	"testing"

	"github.com/intakehq/intake/event"
)

func TestEachEventOnceAcrossPaths(t *testing.T) {
	res, err := run(context.Background(), 40, 0.3, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.byID) != 40 || res.twice != 0 {
		t.Fatalf("%d events delivered, %d twice; want 40 and 0", len(res.byID), res.twice)
	}
	// Every lost webhook was found by the poll; the poll found the others
	// too, later, and the store suppressed those copies.
	if res.via[event.Poll] < res.dropped || res.dropped == 0 {
		t.Errorf("%d webhooks lost but %d events came by poll", res.dropped, res.via[event.Poll])
	}
	// The router decoded every invoice: amount_paid is 100·i for evt i.
	if res.paid != 100*40*41/2 {
		t.Errorf("paid %d in all, want %d", res.paid, 100*40*41/2)
	}
	if res.suppressed == 0 {
		t.Error("the poll found no copy of a webhook's event to suppress")
	}
	t.Logf("webhook %d, poll %d, suppressed %d", res.via[event.Webhook], res.via[event.Poll], res.suppressed)
}
