package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/intakehq/intake/event"
)

// The fault campaign found it for claims (a reply lost after the commit
// left the event held by a live holder that did not have it); an
// adoption's reply can be lost the same way: the events it took stay held
// by this live holder, which never got them, and no other holder adopts
// them while it lives. Adopt now gives them back at its next call, so
// they are adopted (here or elsewhere) once.
func TestLostAdoptionReplyIsGivenBack(t *testing.T) {
	pool := scanPool(t)
	ctx := context.Background()
	prefix := "lostadopt" + newLockIDString() + "_"
	open := func() *Backend {
		b, err := New(ctx, pool, WithPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	t.Cleanup(func() {
		for _, tb := range []string{"keys", "checkpoints", "leases", "feed"} {
			_, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+prefix+tb)
		}
		_, _ = pool.Exec(ctx, `DROP SEQUENCE IF EXISTS `+prefix+`keys_seq`)
	})
	gone := open()
	for i := range 3 {
		if _, err := gone.Enqueue(ctx, fmt.Sprint("k", i), event.Event{Source: "s", ID: fmt.Sprint(i)}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	gone.Close() // its events given back: adoptable

	a := open()
	a.adoptReplyLost = func() error { return errors.New("connection reset as the reply came back") }
	if got, err := a.Adopt(ctx, 10, time.Minute); err == nil {
		t.Fatalf("the lost reply was not an error (%d adopted)", len(got))
	}
	a.adoptReplyLost = nil
	b := open()
	seen := map[string]int{}
	for range 3 { // the next looks of both holders, as their adopters make them
		for _, q := range []*Backend{a, b} {
			got, err := q.Adopt(ctx, 10, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range got {
				seen[s.Key]++
			}
		}
	}
	if len(seen) != 3 {
		t.Fatalf("after the lost reply, %d of the 3 events were adopted again (%v): the rest are held by a live holder that does not have them", len(seen), seen)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("%s adopted %d times", k, n)
		}
	}
}
