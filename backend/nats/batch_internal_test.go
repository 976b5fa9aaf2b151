package nats

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intakehq/intake/backend/nats/natstest"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// ownQueue starts a nats-server of the test's own (natstest.Version,
// which takes atomic batches and per-message TTLs) and returns a function
// that opens a holder on one queue name there.
func ownQueue(t *testing.T) func() *Queue {
	t.Helper()
	bin, err := natstest.Binary()
	if err != nil {
		msg := err.Error() + "; set INTAKE_NATS_SERVER to a nats-server binary (2.12 or later)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	c, err := natstest.Start(bin, t.TempDir(), 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	if err := c.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return func() *Queue {
		q, err := NewQueue(context.Background(), nc, WithName("BATCH"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	}
}

func claimAll(t *testing.T, q *Queue, keys []string) {
	t.Helper()
	for _, k := range keys {
		if st, err := q.Enqueue(context.Background(), k, event.Event{Source: "s", ID: k}, time.Minute); err != nil || st != dedupe.Claimed {
			t.Fatalf("Enqueue %s: %v, %v", k, st, err)
		}
	}
}

// records counts the messages on the records' subjects, and returns the
// stream's last sequence.
func records(t *testing.T, q *Queue) (n, last uint64) {
	t.Helper()
	info, err := q.recs.Info(context.Background(), jetstream.WithSubjectFilter(q.root+".e.*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range info.State.Subjects {
		n += c
	}
	return n, info.State.LastSeq
}

// A commit of many keys on a server that takes atomic batches is two
// batches: the done keys, then a marker over each record, which the
// server removes after a second. Every key is done, a resend is answered
// done while its marker is there and after, and no record is left.
func TestCommitManyInBatches(t *testing.T) {
	q := ownQueue(t)()
	if !q.batched {
		t.Fatal("a nats-server of natstest.Version takes atomic batches, and the queue does not use them")
	}
	ctx := context.Background()
	keys := make([]string, 1200) // three batches of markers (500 each)
	for i := range keys {
		keys[i] = fmt.Sprint("k", i)
	}
	claimAll(t, q, keys)
	_, before := records(t, q)
	if err := q.CommitMany(ctx, keys, time.Hour); err != nil {
		t.Fatal(err)
	}
	// A deletion writes no message; a marker does (the heartbeat's
	// registration may write one more meanwhile).
	_, after := records(t, q)
	if after-before < uint64(len(keys)) {
		t.Fatalf("%d messages written over %d records; want a marker over each", after-before, len(keys))
	}
	if len(q.held) != 0 {
		t.Errorf("%d keys still held after their commit", len(q.held))
	}
	resend := func(when string) {
		for _, k := range keys[:50] {
			if st, err := q.Enqueue(ctx, k, event.Event{Source: "s", ID: k}, time.Minute); err != nil || st != dedupe.Done {
				t.Fatalf("a resend %s: %v, %v; want done", when, st, err)
			}
		}
	}
	resend("beside its marker")
	var n uint64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if n, _ = records(t, q); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d markers left 30 s after the commit (their TTL is %s)", n, markerTTL)
		}
	}
	resend("after its marker")
	if n, _ = records(t, q); n != 0 {
		t.Errorf("%d records left by resends of keys done", n)
	}
	recs, err := q.List(ctx, dedupe.Filter{})
	if err != nil || len(recs) != 0 {
		t.Errorf("List: %d records, %v", len(recs), err)
	}
}

// A marker is a dead record of its key whose retention has ended: what
// every reader, and earlier versions of this package, take for gone.
func TestAMarkerReadsAsGone(t *testing.T) {
	q := &Queue{root: "intake.T"}
	m := q.markerMsg("4:shop:a", 7)
	r, err := parseRecord(m.Header, m.Data, 9)
	if err != nil {
		t.Fatal(err)
	}
	if r.key != "4:shop:a" || r.state != dedupe.Dead || !r.expired(time.Now()) || !r.marker() {
		t.Errorf("%+v: want a dead record of the key, expired", r)
	}
	if m.Header.Get(jetstream.ExpectedLastSubjSeqHeader) != "7" || m.Header.Get(jetstream.MsgRollup) != jetstream.MsgRollupSubject {
		t.Errorf("headers %v: want a rollup on the record's sequence", m.Header)
	}
}

// A record that changed under the batch (here adopted by another holder
// after this one's heartbeat lapsed) fails the markers' batch, which
// stores none; the keys are then committed one by one: every record this
// holder held is gone, and the other holder's is left to it.
func TestACommitBatchWithAChangedRecord(t *testing.T) {
	open := ownQueue(t)
	q, other := open(), open()
	ctx := context.Background()
	keys := []string{"a", "b", "c", "d"}
	claimAll(t, q, keys)
	r, found, err := other.get(ctx, "c")
	if err != nil || !found {
		t.Fatal(found, err)
	}
	r.holder = other.holder
	seq, conflict, err := other.put(ctx, &r, r.last)
	if err != nil || conflict {
		t.Fatal(conflict, err)
	}
	other.held["c"] = seq
	if err := q.CommitMany(ctx, keys, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "d"} {
		if _, found, err := q.get(ctx, k); err != nil || found {
			t.Errorf("%s: record still there (%v)", k, err)
		}
	}
	got, found, err := q.get(ctx, "c")
	if err != nil || !found || got.state != dedupe.Queued || got.holder != other.holder {
		t.Errorf("the other holder's record: %+v, %v, %v; want it left queued to it", got, found, err)
	}
}

// On a server without atomic batches (the queue finds out when it makes
// its streams) commits go key by key; the shared test server may be one.
func TestBatchedIsWhatTheServerSays(t *testing.T) {
	q := sharedQueue(t)()
	info := q.recs.CachedInfo()
	v := info.Config
	if q.batched != (v.AllowAtomicPublish && v.AllowMsgTTL) {
		t.Errorf("batched %v, stream allows atomic %v, TTL %v", q.batched, v.AllowAtomicPublish, v.AllowMsgTTL)
	}
	t.Logf("shared server: batched commits %v", q.batched)
}
