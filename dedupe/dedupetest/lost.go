package dedupetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// RunLostAdoptionReply checks that an adoption whose write was stored and
// whose reply was lost (a connection cut as the reply came back) costs no
// event. Without care, the events it took stay held by this live holder,
// which never got them, and no other holder adopts them while it lives;
// they must be adopted again by the next looks of the holders, once.
//
// open returns a new holder on storage shared by every call of one run;
// lose(q, true) makes q's adoptions fail after their write, as the
// backend's test hook allows, and lose(q, false) ends it. Backends call
// it from an internal test, where the hook is in reach.
func RunLostAdoptionReply(t *testing.T, open func() dedupe.Queue, lose func(q dedupe.Queue, on bool)) {
	t.Helper()
	ctx := context.Background()
	gone := open()
	keys := []string{"k0", "k1", "k2"}
	for i, k := range keys {
		if _, err := gone.Enqueue(ctx, k, event.Event{Source: "s", ID: fmt.Sprint(i)}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := gone.Extend(ctx, keys, 0); err != nil { // given back: adoptable at once
		t.Fatal(err)
	}

	a := open()
	lose(a, true)
	if got, err := a.Adopt(ctx, 10, time.Minute); err == nil {
		t.Fatalf("the lost reply was not an error (%d adopted)", len(got))
	}
	lose(a, false)
	b := open()
	seen := map[string]int{}
	for range 3 { // the next looks of both holders, as their adopters make them
		for _, q := range []dedupe.Queue{a, b} {
			got, err := q.Adopt(ctx, 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range got {
				seen[s.Key]++
			}
		}
	}
	if len(seen) != len(keys) {
		t.Fatalf("after the lost reply, %d of the %d events were adopted again (%v): the rest are held by a live holder that does not have them", len(seen), len(keys), seen)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s adopted %d times", k, n)
		}
	}
}
