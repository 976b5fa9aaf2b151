package nats

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intakehq/intake/event"
)

// An adoption's write can be stored and its reply lost (a connection cut
// as the reply comes back): the events it took stay held by this live
// holder, which never got them, and no other holder adopts them while its
// heartbeat lives. Adopt gives them back at its next call (the token of
// the lost write says which), so they are adopted, here or elsewhere,
// once. The same as the Postgres and Redis queues' test of that name.
func TestLostAdoptionReplyIsGivenBack(t *testing.T) {
	url := os.Getenv("INTAKE_NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(url, nats.Timeout(3*time.Second))
	if err != nil {
		msg := "NATS not reachable at " + url + ": " + err.Error() + "; start one with nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/nats-js &, or set INTAKE_NATS_URL"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx := context.Background()
	name := fmt.Sprintf("LOSTADOPT%d", rand.Uint32())
	t.Cleanup(func() {
		js, _ := jetstream.New(nc)
		for _, s := range []string{name, name + "_DONE", name + "_LIVE"} {
			_ = js.DeleteStream(ctx, s)
		}
		nc.Close()
	})
	open := func() *Queue {
		q, err := NewQueue(ctx, nc, WithName(name), WithHeartbeat(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	}
	gone := open()
	for i := range 3 {
		if _, err := gone.Enqueue(ctx, fmt.Sprint("k", i), event.Event{Source: "s", ID: fmt.Sprint(i)}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if err := gone.Extend(ctx, []string{"k0", "k1", "k2"}, 0); err != nil { // given back: adoptable
		t.Fatal(err)
	}

	a := open()
	a.adoptReplyLost = func() error { return errors.New("connection reset as the reply came back") }
	if got, err := a.Adopt(ctx, 10, time.Minute); err == nil {
		t.Fatalf("the lost reply was not an error (%d adopted)", len(got))
	}
	a.adoptReplyLost = nil
	b := open()
	seen := map[string]int{}
	for range 3 { // the next looks of both holders, as their adopters make them
		for _, q := range []*Queue{a, b} {
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
