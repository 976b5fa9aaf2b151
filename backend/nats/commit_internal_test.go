package nats

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// Found by the fault campaign (30 minutes, a link fault at the moment of
// a commit): a commit wrote the key done but its record stayed, queued
// and held by the live replica that had handled it, so that every resend
// was answered pending (409) for as long as that replica lived. The
// server had answered the deletion "unsuccessful", which the queue took
// for "already gone". A commit now deletes until the record is gone (or
// is another holder's), or fails, to be tried again.
func TestCommitLeavesNoRecordBehind(t *testing.T) {
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
	name := fmt.Sprintf("COMMIT%d", rand.Uint32())
	t.Cleanup(func() {
		js, _ := jetstream.New(nc)
		for _, s := range []string{name, name + "_DONE", name + "_LIVE"} {
			_ = js.DeleteStream(ctx, s)
		}
		nc.Close()
	})
	q, err := NewQueue(ctx, nc, WithName(name))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for _, stale := range []bool{false, true} {
		key := fmt.Sprint("k-stale-", stale)
		if st, err := q.Enqueue(ctx, key, event.Event{Source: "s", ID: key}, time.Minute); err != nil || st != dedupe.Claimed {
			t.Fatalf("Enqueue: %v, %v", st, err)
		}
		if stale { // what the holder knows of its record is out of date
			q.mu.Lock()
			q.held[key]--
			q.mu.Unlock()
		}
		fails := 1
		q.deleteRefused = func() bool { fails--; return fails >= 0 } // the server answers "unsuccessful" once
		for try := 0; ; try++ {                                      // as the committer does: again until it succeeds
			if err := q.CommitMany(ctx, []string{key}, time.Hour); err == nil {
				break
			} else if try == 5 {
				t.Fatalf("stale %v: commit: %v", stale, err)
			}
		}
		q.deleteRefused = nil
		if st, err := q.Enqueue(ctx, key, event.Event{Source: "s", ID: key}, time.Minute); err != nil || st != dedupe.Done {
			t.Errorf("stale %v: a resend after the commit: %v, %v; want done (its record was left behind)", stale, st, err)
		}
	}
}
