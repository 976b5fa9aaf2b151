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

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
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
	dedupetest.RunLostAdoptionReply(t, func() dedupe.Queue { return open() }, func(q dedupe.Queue, on bool) {
		q.(*Queue).adoptReplyLost = nil
		if on {
			q.(*Queue).adoptReplyLost = func() error { return errors.New("connection reset as the reply came back") }
		}
	})
}
