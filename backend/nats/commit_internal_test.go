package nats

import (
	"context"
	"fmt"
	"testing"
	"time"

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
	q := sharedQueue(t)()
	ctx := context.Background()
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
