package dedupetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/intakehq/intake/dedupe"
)

// AckTxFunc acks d on holder q inside a transaction of the backend's own
// database (its transactional ack, such as postgres.Backend.AckTx), then
// commits the transaction (commit true) or rolls it back, and returns the
// ack's error, or the commit's.
type AckTxFunc func(ctx context.Context, q dedupe.Queue, d dedupe.Delivery, commit bool) error

// delivery is a [dedupe.Delivery] for the suite.
type delivery struct{ key, sub string }

func (d delivery) Key() string          { return d.key }
func (d delivery) Subscription() string { return d.sub }

// lastDelivery is the last subscription's delivery of its event.
type lastDelivery struct {
	delivery
	retain time.Duration
}

func (d lastDelivery) Last() (time.Duration, bool) { return d.retain, true }
func (d lastDelivery) Committed()                  {}

// RunTxAck runs the conformance suite of a queue's transactional ack: it
// is fenced by the holder, once per key and subscription, undone by a
// rollback, and what it marked is returned by Adopt ([dedupe.Stored.Done])
// and cleared by the commit of the key. open is as for [RunQueue].
func RunTxAck(t *testing.T, open func(t *testing.T) (holder func() dedupe.Queue), ack AckTxFunc) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, holder func() dedupe.Queue, ack AckTxFunc)
	}{
		{"OnlyTheHolderAcks", ackOnlyByHolder},
		{"OncePerSubscription", ackOncePerSubscription},
		{"RollbackUndoesTheAck", ackRollback},
		{"AdoptReturnsWhatIsDone", adoptReturnsDone},
		{"NotHeldAfterAdoption", ackAfterAdoption},
		{"NotHeldAfterCommit", ackAfterCommit},
		{"CommitClearsTheMarks", commitClearsDone},
		{"LastAckCommitsTheKey", lastAckCommits},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t), ack)
		})
	}
}

func wantAck(t *testing.T, ack AckTxFunc, q dedupe.Queue, d dedupe.Delivery, commit bool, want error) {
	t.Helper()
	err := ack(context.Background(), q, d, commit)
	switch {
	case want == nil && err != nil:
		t.Fatalf("ack of %s for %q: %v, want nil", d.Key(), d.Subscription(), err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("ack of %s for %q: %v, want %v", d.Key(), d.Subscription(), err, want)
	}
}

func ackOnlyByHolder(t *testing.T, holder func() dedupe.Queue, ack AckTxFunc) {
	a, b := holder(), holder()
	k := key(t, "held")
	enqueue(t, a, k, long, dedupe.Claimed)
	wantAck(t, ack, b, delivery{k, "x"}, true, dedupe.ErrNotHeld)
	wantAck(t, ack, a, delivery{k, "x"}, true, nil)
	wantAck(t, ack, a, delivery{key(t, "never-enqueued"), "x"}, true, dedupe.ErrNotHeld)
}

func ackOncePerSubscription(t *testing.T, holder func() dedupe.Queue, ack AckTxFunc) {
	a := holder()
	k := key(t, "once")
	enqueue(t, a, k, long, dedupe.Claimed)
	wantAck(t, ack, a, delivery{k, "x"}, true, nil)
	wantAck(t, ack, a, delivery{k, "x"}, true, dedupe.ErrAlreadyAcked)
	wantAck(t, ack, a, delivery{k, "y"}, true, nil)
	wantAck(t, ack, a, delivery{k, "y"}, false, dedupe.ErrAlreadyAcked)
}

func ackRollback(t *testing.T, holder func() dedupe.Queue, ack AckTxFunc) {
	a := holder()
	k := key(t, "rolled-back")
	enqueue(t, a, k, long, dedupe.Claimed)
	wantAck(t, ack, a, delivery{k, "x"}, false, nil)
	wantAck(t, ack, a, delivery{k, "x"}, true, nil) // the first left nothing
}

func adoptReturnsDone(t *testing.T, holder func() dedupe.Queue, ack AckTxFunc) {
	a, b := holder(), holder()
	k, plain := key(t, "half-done"), key(t, "plain")
	enqueue(t, a, k, short, dedupe.Claimed)
	enqueue(t, a, plain, short, dedupe.Claimed)
	wantAck(t, ack, a, delivery{k, "x"}, true, nil)
	wantAck(t, ack, a, delivery{k, "y"}, false, nil) // rolled back: not done
	crash(t, a)
	got := adopt(t, b, 10, long)
	done := map[string][]string{}
	for _, it := range got {
		done[it.Key] = it.Done
	}
	if len(got) != 2 {
		t.Fatalf("adopted %v, want both", keysOf(got))
	}
	if !slices.Equal(done[k], []string{"x"}) {
		t.Fatalf("adopted %s with Done %q, want [x]", k, done[k])
	}
	if len(done[plain]) != 0 {
		t.Fatalf("adopted %s with Done %q, want none", plain, done[plain])
	}
	wantAck(t, ack, b, delivery{k, "x"}, true, dedupe.ErrAlreadyAcked) // the adopter sees it done
	wantAck(t, ack, b, delivery{k, "y"}, true, nil)
}

func ackAfterAdoption(t *testing.T, holder func() dedupe.Queue, ack AckTxFunc) {
	a, b := holder(), holder()
	k := key(t, "taken-over")
	enqueue(t, a, k, short, dedupe.Claimed)
	crash(t, a)
	if got := adopt(t, b, 10, long); len(got) != 1 {
		t.Fatalf("adopted %v, want [%s]", keysOf(got), k)
	}
	wantAck(t, ack, a, delivery{k, "x"}, true, dedupe.ErrNotHeld)
	wantAck(t, ack, b, delivery{k, "x"}, true, nil)
}

func ackAfterCommit(t *testing.T, holder func() dedupe.Queue, ack AckTxFunc) {
	a := holder()
	k := key(t, "committed")
	enqueue(t, a, k, long, dedupe.Claimed)
	if err := a.CommitMany(context.Background(), []string{k}, long); err != nil {
		t.Fatal(err)
	}
	wantAck(t, ack, a, delivery{k, "x"}, true, dedupe.ErrNotHeld)
}

func commitClearsDone(t *testing.T, holder func() dedupe.Queue, ack AckTxFunc) {
	a, b := holder(), holder()
	k := key(t, "reused")
	enqueue(t, a, k, long, dedupe.Claimed)
	wantAck(t, ack, a, delivery{k, "x"}, true, nil)
	if err := a.CommitMany(context.Background(), []string{k}, short); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * short) // the retention ends: the key arrives as new
	enqueue(t, a, k, short, dedupe.Claimed)
	crash(t, a)
	got := adopt(t, b, 10, long)
	if len(got) != 1 || len(got[0].Done) != 0 {
		t.Fatalf("adopted %v after a commit and a new arrival, want the key with nothing done", got)
	}
}

// The last subscription's ack ([dedupe.LastDelivery]) commits the key in
// the transaction: a rollback leaves it queued; a commit makes it done,
// for the retention, and never adopted.
func lastAckCommits(t *testing.T, holder func() dedupe.Queue, ack AckTxFunc) {
	a, b := holder(), holder()
	k := key(t, "last")
	enqueue(t, a, k, short, dedupe.Claimed)
	wantAck(t, ack, a, delivery{k, "x"}, true, nil)
	wantAck(t, ack, a, lastDelivery{delivery{k, "y"}, long}, false, nil) // rolled back
	enqueue(t, b, k, long, dedupe.Pending)
	wantAck(t, ack, a, lastDelivery{delivery{k, "y"}, long}, true, nil)
	enqueue(t, b, k, long, dedupe.Done)
	// A second ack of the last subscription's delivery: the key is
	// committed and the row says no more, so it is not held (issue #34,
	// item 18: documented so, not ErrAlreadyAcked). Roll back either way.
	wantAck(t, ack, a, lastDelivery{delivery{k, "y"}, long}, true, dedupe.ErrNotHeld)
	crash(t, a)
	if got := adopt(t, b, 10, long); len(got) != 0 {
		t.Fatalf("adopted %v, a key its last ack committed", keysOf(got))
	}
	wantAck(t, ack, b, delivery{k, "z"}, true, dedupe.ErrNotHeld)
}
