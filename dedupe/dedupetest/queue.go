package dedupetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// short is the lease of the queue tests that wait for one to expire.
const short = 300 * time.Millisecond

// RunQueue runs the conformance suite of [dedupe.Queue]. For each subtest, open
// prepares fresh storage and returns a function that opens a holder on it:
// two holders from one storage share events and keys but not claims.
func RunQueue(t *testing.T, open func(t *testing.T) (holder func() dedupe.Queue)) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, holder func() dedupe.Queue)
	}{
		{"OneWinnerAmongConcurrentEnqueues", oneEnqueueWinner},
		{"DuplicateWhilePendingAndDone", pendingAndDone},
		{"AdoptAfterLeaseExpires", adoptAfterExpiry},
		{"AdoptKeepsTheWholeEvent", adoptWholeEvent},
		{"AdoptOldestFirstAndAtMostN", adoptOrder},
		{"ExtendKeepsAndZeroGivesBack", extend},
		{"ExtendOnlyByHolder", extendByHolder},
		{"CommitDeletesTheEvent", commitDeletes},
		{"CommitManyAtOnce", commitMany},
		{"BuryKeepsTheEventDead", buryKeeps},
		{"ReplayPutsADeadEventBack", replayDead},
		{"DiscardForgets", discardForgets},
		{"ReplayManyAndDiscardMany", actOnMany},
		{"ResendOfADeadKeyIsClaimed", resendDead},
		{"AttemptsCountedOnAdoption", attemptsOnAdoption},
		{"CrashCountsOnlyStartedEvents", crashCountsStarted},
		{"ListFiltersAndPages", listFilters},
		{"EnqueueManyAnswersEach", enqueueMany},
		{"ReleaseForgetsEverything", releaseForgets},
		{"RetentionExpiry", retention},
		{"CanceledContext", canceled},
		{"AdoptKeepsNilAndEmptyPayloads", adoptNilPayload},
		{"HostileEventsByteExactOrInvalid", hostileEvents},
		{"WakesOtherHolders", wakesOtherHolders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, open(t))
		})
	}
}

func key(t *testing.T, name string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return event.Key("conformance", name+"-"+hex.EncodeToString(b[:]))
}

func ev(id string) event.Event {
	return event.Event{ID: id, Source: "conformance", Type: "thing.happened", Via: event.Webhook,
		Time: time.UnixMilli(1_700_000_000_123), Received: time.UnixMilli(1_700_000_001_456),
		Payload: []byte(`{"id":"` + id + `","bytes":"\u0000\xff"}`), Meta: map[string]string{"k": "v"}}
}

func enqueue(t *testing.T, q dedupe.Queue, k string, lease time.Duration, want dedupe.State) {
	t.Helper()
	got, err := q.Enqueue(context.Background(), k, ev(k), lease)
	if err != nil {
		t.Fatalf("Enqueue(%q): %v", k, err)
	}
	if got != want {
		t.Fatalf("Enqueue(%q) = %v, want %v", k, got, want)
	}
}

func adopt(t *testing.T, q dedupe.Queue, n int, lease time.Duration) []dedupe.Stored {
	t.Helper()
	got, err := q.Adopt(context.Background(), n, lease)
	if err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	return got
}

func keysOf(items []dedupe.Stored) []string {
	ks := make([]string, len(items))
	for i, it := range items {
		ks[i] = it.Key
	}
	return ks
}

func oneEnqueueWinner(t *testing.T, holder func() dedupe.Queue) {
	k := key(t, "contended")
	holders := []dedupe.Queue{holder(), holder()}
	var mu sync.Mutex
	counts := map[dedupe.State]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, err := holders[i%2].Enqueue(context.Background(), k, ev(k), long)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			counts[st]++
		}()
	}
	close(start)
	wg.Wait()
	if counts[dedupe.Claimed] != 1 || counts[dedupe.Pending] != 49 {
		t.Fatalf("states %v, want 1 claimed and 49 pending", counts)
	}
}

func pendingAndDone(t *testing.T, holder func() dedupe.Queue) {
	q := holder()
	k := key(t, "a")
	enqueue(t, q, k, long, dedupe.Claimed)
	enqueue(t, q, k, long, dedupe.Pending)
	if err := q.CommitMany(context.Background(), []string{k}, long); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, k, long, dedupe.Done)
}

// crash ends holder q as a killed process would: it closes q when q can
// be closed (a backend that knows a holder is alive by a lock or a
// connection sees it gone, without its claims given back), and waits out
// the short lease (a backend that knows it by the lease alone).
func crash(t *testing.T, q dedupe.Queue) {
	t.Helper()
	if c, ok := q.(interface{ Close() error }); ok {
		_ = c.Close()
	}
	time.Sleep(2 * short)
}

func adoptAfterExpiry(t *testing.T, holder func() dedupe.Queue) {
	a, b, c := holder(), holder(), holder()
	k := key(t, "crashed")
	start := time.Now()
	enqueue(t, a, k, short, dedupe.Claimed)
	if got := adopt(t, b, 10, long); len(got) != 0 {
		if time.Since(start) < short {
			t.Fatalf("adopted %v from a live holder", keysOf(got))
		}
		t.Skipf("the machine is slower than the short lease (%v); nothing more to check here", short)
	}
	crash(t, a)
	got := adopt(t, b, 10, long)
	if len(got) != 1 || got[0].Key != k {
		t.Fatalf("adopted %v, want [%s]", keysOf(got), k)
	}
	if again := adopt(t, c, 10, long); len(again) != 0 {
		t.Fatalf("adopted twice: %v", keysOf(again))
	}
	// Adopted means claimed: a duplicate is still pending.
	enqueue(t, c, k, long, dedupe.Pending)
}

func adoptWholeEvent(t *testing.T, holder func() dedupe.Queue) {
	a, q := holder(), holder()
	k := key(t, "whole")
	enqueue(t, a, k, short, dedupe.Claimed)
	crash(t, a)
	got := adopt(t, q, 1, long)
	if len(got) != 1 {
		t.Fatalf("adopted %d", len(got))
	}
	want := ev(k)
	e := got[0].Event
	if e.ID != want.ID || e.Source != want.Source || e.Type != want.Type || e.Via != want.Via ||
		!e.Time.Equal(want.Time) || !e.Received.Equal(want.Received) || string(e.Payload) != string(want.Payload) ||
		e.Meta["k"] != "v" {
		t.Fatalf("adopted event %+v, want %+v", e, want)
	}
}

func adoptOrder(t *testing.T, holder func() dedupe.Queue) {
	a, q := holder(), holder()
	var ks []string
	for i := range 5 {
		k := key(t, fmt.Sprint("n", i))
		ks = append(ks, k)
		enqueue(t, a, k, short, dedupe.Claimed)
		time.Sleep(5 * time.Millisecond)
	}
	crash(t, a)
	first := adopt(t, q, 3, long)
	rest := adopt(t, q, 10, long)
	got := append(keysOf(first), keysOf(rest)...)
	if len(first) != 3 || fmt.Sprint(got) != fmt.Sprint(ks) {
		t.Fatalf("adopted %v then %v, want %v oldest first in batches of 3", keysOf(first), keysOf(rest), ks)
	}
}

func extend(t *testing.T, holder func() dedupe.Queue) {
	a, b := holder(), holder()
	k := key(t, "extend")
	enqueue(t, a, k, short, dedupe.Claimed)
	if err := a.Extend(context.Background(), []string{k}, long); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * short)
	if got := adopt(t, b, 10, long); len(got) != 0 {
		t.Fatalf("adopted an extended claim: %v", keysOf(got))
	}
	if err := a.Extend(context.Background(), []string{k}, 0); err != nil {
		t.Fatal(err)
	}
	if got := adopt(t, b, 10, long); len(got) != 1 {
		t.Fatalf("a claim given back was not adoptable: %v", keysOf(got))
	}
}

func extendByHolder(t *testing.T, holder func() dedupe.Queue) {
	a, b := holder(), holder()
	k := key(t, "holder")
	enqueue(t, a, k, short, dedupe.Claimed)
	if err := b.Extend(context.Background(), []string{k}, long); err != nil {
		t.Fatal(err)
	}
	crash(t, a)
	if got := adopt(t, b, 10, long); len(got) != 1 {
		t.Fatalf("another holder's Extend kept the claim: adopted %v", keysOf(got))
	}
}

func commitDeletes(t *testing.T, holder func() dedupe.Queue) {
	q := holder()
	k := key(t, "commit")
	enqueue(t, q, k, short, dedupe.Claimed)
	if err := q.CommitMany(context.Background(), []string{k}, long); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * short)
	if got := adopt(t, q, 10, long); len(got) != 0 {
		t.Fatalf("adopted a committed event: %v", keysOf(got))
	}
}

func releaseForgets(t *testing.T, holder func() dedupe.Queue) {
	q := holder()
	k := key(t, "release")
	enqueue(t, q, k, short, dedupe.Claimed)
	if err := q.Release(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * short)
	if got := adopt(t, q, 10, long); len(got) != 0 {
		t.Fatalf("adopted a released event: %v", keysOf(got))
	}
	enqueue(t, q, k, long, dedupe.Claimed)
}

func retention(t *testing.T, holder func() dedupe.Queue) {
	q := holder()
	k := key(t, "retain")
	enqueue(t, q, k, long, dedupe.Claimed)
	if err := q.CommitMany(context.Background(), []string{k}, short); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, k, long, dedupe.Done)
	time.Sleep(2 * short)
	enqueue(t, q, k, long, dedupe.Claimed)
}

func canceled(t *testing.T, holder func() dedupe.Queue) {
	q := holder()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k := key(t, "canceled")
	if _, err := q.Enqueue(ctx, k, ev(k), long); !errors.Is(err, context.Canceled) {
		t.Fatalf("Enqueue with a canceled context: %v", err)
	}
	if _, err := q.Adopt(ctx, 1, long); !errors.Is(err, context.Canceled) {
		t.Fatalf("Adopt with a canceled context: %v", err)
	}
	enqueue(t, q, k, long, dedupe.Claimed)
}

// adoptNilPayload: an event without a payload is a queued event like any
// other (a custom fetch often yields one).
func adoptNilPayload(t *testing.T, holder func() dedupe.Queue) {
	a, b := holder(), holder()
	var ks []string
	for i, p := range [][]byte{nil, {}} {
		k := key(t, fmt.Sprint("nil-payload-", i))
		ks = append(ks, k)
		e := ev(k)
		e.Payload = p
		if st, err := a.Enqueue(context.Background(), k, e, short); err != nil || st != dedupe.Claimed {
			t.Fatalf("Enqueue: %v, %v", st, err)
		}
	}
	crash(t, a)
	if q, ok := b.(interface {
		Cleanup(context.Context, int) (int64, error)
	}); ok {
		if _, err := q.Cleanup(context.Background(), 1000); err != nil {
			t.Fatal(err)
		}
	}
	got := adopt(t, b, 10, long)
	if fmt.Sprint(keysOf(got)) != fmt.Sprint(ks) {
		t.Fatalf("adopted %v, want %v: an event without a payload was lost", keysOf(got), ks)
	}
	for _, it := range got {
		if len(it.Event.Payload) != 0 {
			t.Fatalf("payload %q, want empty", it.Event.Payload)
		}
	}
}

// hostileEvents: whatever bytes a provider sends in an id, a type, a
// source or meta come back byte-exact from adoption, or Enqueue refuses
// them with an error wrapping event.ErrInvalid, never a retryable one.
func hostileEvents(t *testing.T, holder func() dedupe.Queue) {
	a, b := holder(), holder()
	long3k := make([]byte, 3000)
	for i := range long3k {
		long3k[i] = 'a' + byte(i%26)
	}
	cases := []event.Event{
		{ID: "nul\x00id", Type: "t\x00", Source: "conformance"},
		{ID: "bad-utf8-\xff\xfe", Type: "\xc3\x28", Source: "conformance\xff"},
		{ID: string(long3k), Source: "conformance"},
		{ID: "meta", Source: "conformance", Meta: map[string]string{"nul": "a\x00b", "bad\xff": "\xed\xa0\x80", "": ""}},
		{ID: "payload", Source: "conformance", Payload: []byte("\x00\xff{not json")},
	}
	want := map[string]event.Event{}
	for i, e := range cases {
		e.ID += fmt.Sprint("-", i, "-", t.Name())
		e.Via = event.Poll
		k := event.Key(e.Source, e.ID)
		st, err := a.Enqueue(context.Background(), k, e, short)
		if err != nil {
			if !errors.Is(err, event.ErrInvalid) {
				t.Errorf("case %d: Enqueue: %v; want success or an error wrapping event.ErrInvalid", i, err)
			}
			continue
		}
		if st != dedupe.Claimed {
			t.Fatalf("case %d: %v", i, st)
		}
		want[k] = e
		if st, err := a.Enqueue(context.Background(), k, e, short); err != nil || st != dedupe.Pending {
			t.Errorf("case %d: second Enqueue: %v, %v; want pending", i, st, err)
		}
	}
	crash(t, a)
	got := adopt(t, b, 100, long)
	if len(got) != len(want) {
		t.Fatalf("adopted %d events, want %d", len(got), len(want))
	}
	for _, it := range got {
		w, ok := want[it.Key]
		if !ok {
			t.Fatalf("adopted key %q, not enqueued", it.Key)
		}
		e := it.Event
		if e.ID != w.ID || e.Type != w.Type || e.Source != w.Source || string(e.Payload) != string(w.Payload) ||
			fmt.Sprint(e.Meta) != fmt.Sprint(w.Meta) || len(e.Meta) != len(w.Meta) {
			t.Errorf("adopted %q, want byte-exact %q", fmt.Sprintf("%+v", e), fmt.Sprintf("%+v", w))
		}
		if err := b.CommitMany(context.Background(), []string{it.Key}, long); err != nil {
			t.Errorf("Commit: %v", err)
		}
		if st, err := b.Enqueue(context.Background(), it.Key, w, long); err != nil || st != dedupe.Done {
			t.Errorf("Enqueue after Commit: %v, %v; want done", st, err)
		}
	}
}

func commitMany(t *testing.T, holder func() dedupe.Queue) {
	q, b := holder(), holder()
	var ks []string
	for i := range 20 {
		k := key(t, fmt.Sprint("many-", i))
		ks = append(ks, k)
		enqueue(t, q, k, short, dedupe.Claimed)
	}
	if err := q.CommitMany(context.Background(), ks[:15], long); err != nil {
		t.Fatal(err)
	}
	if err := q.CommitMany(context.Background(), nil, long); err != nil {
		t.Fatalf("CommitMany of no keys: %v", err)
	}
	for _, k := range ks[:15] {
		enqueue(t, q, k, long, dedupe.Done)
	}
	crash(t, q)
	if got := adopt(t, b, 100, long); fmt.Sprint(keysOf(got)) != fmt.Sprint(ks[15:]) {
		t.Fatalf("adopted %v, want only the 5 not committed", keysOf(got))
	}
}

func failure(n int) dedupe.Failure {
	return dedupe.Failure{Err: "handler bug: \"quoted\"\n\x00 é", Class: event.Permanent, Attempts: n, First: time.UnixMilli(1_700_000_000_000),
		Last: time.UnixMilli(1_700_000_005_000), Subscription: "orders"}
}

func get(t *testing.T, q dedupe.Queue, k string) dedupe.Record {
	t.Helper()
	r, err := q.Get(context.Background(), k)
	if err != nil {
		t.Fatalf("Get(%q): %v", k, err)
	}
	return r
}

func buryKeeps(t *testing.T, holder func() dedupe.Queue) {
	a, b := holder(), holder()
	k := key(t, "dead")
	enqueue(t, a, k, short, dedupe.Claimed)
	if err := a.Bury(context.Background(), k, failure(5), long); err != nil {
		t.Fatal(err)
	}
	r := get(t, b, k)
	if r.State != dedupe.Dead || r.Attempts != 5 || r.Failure == nil || !sameFailure(*r.Failure, failure(5)) || r.Event.ID != k {
		t.Fatalf("dead record %+v, failure %+v", r, r.Failure)
	}
	if string(r.Event.Payload) != string(ev(k).Payload) {
		t.Fatalf("payload %q", r.Event.Payload)
	}
	time.Sleep(2 * short)
	if got := adopt(t, b, 10, long); len(got) != 0 {
		t.Fatalf("adopted a dead event: %v", keysOf(got))
	}
	dead, err := b.List(context.Background(), dedupe.Filter{State: dedupe.Dead, Source: "conformance"})
	if err != nil {
		t.Fatal(err)
	}
	if !hasKey(dead, k) {
		t.Fatalf("List(dead) misses %s", k)
	}
	queued, err := b.List(context.Background(), dedupe.Filter{State: dedupe.Queued, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if hasKey(queued, k) {
		t.Fatal("a dead event listed as queued")
	}
}

func sameFailure(a, b dedupe.Failure) bool {
	return a.Err == b.Err && a.Class == b.Class && a.Attempts == b.Attempts && a.First.Equal(b.First) && a.Last.Equal(b.Last) &&
		a.Subscription == b.Subscription
}

func hasKey(recs []dedupe.Record, k string) bool {
	for _, r := range recs {
		if r.Key == k {
			return true
		}
	}
	return false
}

func replayDead(t *testing.T, holder func() dedupe.Queue) {
	a, b := holder(), holder()
	k := key(t, "replay")
	enqueue(t, a, k, long, dedupe.Claimed)
	if err := a.Bury(context.Background(), k, failure(3), long); err != nil {
		t.Fatal(err)
	}
	if err := b.Replay(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	if r := get(t, b, k); r.State != dedupe.Queued || r.Attempts != 0 || r.Failure != nil {
		t.Fatalf("replayed record %+v", r)
	}
	got := adopt(t, b, 10, long) // at once: no lease to wait out
	if len(got) != 1 || got[0].Key != k || got[0].Attempts != 0 {
		t.Fatalf("adopted %+v after replay, want %s with 0 attempts", got, k)
	}
	if err := b.Replay(context.Background(), k); err != nil {
		t.Fatalf("Replay of a queued event: %v, want nil (nothing to do)", err)
	}
	if err := b.Replay(context.Background(), key(t, "missing")); !errors.Is(err, dedupe.ErrNotFound) {
		t.Fatalf("Replay of a missing key: %v", err)
	}
}

// actOnMany checks a [dedupe.BatchInspector]: ReplayMany replays the dead
// keys of a list (once: a second call counts none), DiscardMany discards
// the queued and dead ones, and neither counts a missing key. A queue
// without it passes.
func actOnMany(t *testing.T, holder func() dedupe.Queue) {
	a := holder()
	m, ok := a.(dedupe.BatchInspector)
	if !ok {
		t.Skip("the queue has no ReplayMany and DiscardMany")
	}
	ctx := context.Background()
	var dead, queued []string
	for i := range 3 {
		k := key(t, fmt.Sprint("many-dead-", i))
		enqueue(t, a, k, long, dedupe.Claimed)
		if err := a.Bury(ctx, k, failure(2), long); err != nil {
			t.Fatal(err)
		}
		dead = append(dead, k)
		q := key(t, fmt.Sprint("many-queued-", i))
		enqueue(t, a, q, long, dedupe.Claimed)
		queued = append(queued, q)
	}
	missing := key(t, "many-missing")
	all := append(append(append([]string{}, dead...), queued...), missing)
	if n, err := m.ReplayMany(ctx, all); err != nil || n != len(dead) {
		t.Fatalf("ReplayMany of 3 dead, 3 queued, 1 missing: %d, %v; want 3", n, err)
	}
	for _, k := range dead {
		if r := get(t, a, k); r.State != dedupe.Queued || r.Attempts != 0 || r.Failure != nil {
			t.Fatalf("replayed record %+v", r)
		}
	}
	if n, err := m.ReplayMany(ctx, dead); err != nil || n != 0 {
		t.Fatalf("ReplayMany again: %d, %v; want 0 (replayed once per death)", n, err)
	}
	if err := a.Bury(ctx, dead[0], failure(1), long); err != nil {
		t.Fatal(err)
	}
	if n, err := m.DiscardMany(ctx, all); err != nil || n != len(dead)+len(queued) {
		t.Fatalf("DiscardMany of 1 dead, 5 queued, 1 missing: %d, %v; want 6", n, err)
	}
	for _, k := range all {
		if _, err := a.Get(ctx, k); !errors.Is(err, dedupe.ErrNotFound) {
			t.Fatalf("Get of %s after DiscardMany: %v", k, err)
		}
	}
	if n, err := m.DiscardMany(ctx, nil); err != nil || n != 0 {
		t.Fatalf("DiscardMany of nothing: %d, %v", n, err)
	}
}

func discardForgets(t *testing.T, holder func() dedupe.Queue) {
	q := holder()
	queued, dead := key(t, "discard-queued"), key(t, "discard-dead")
	enqueue(t, q, queued, long, dedupe.Claimed)
	enqueue(t, q, dead, long, dedupe.Claimed)
	if err := q.Bury(context.Background(), dead, failure(1), long); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{queued, dead} {
		if err := q.Discard(context.Background(), k); err != nil {
			t.Fatalf("Discard(%s): %v", k, err)
		}
		if _, err := q.Get(context.Background(), k); !errors.Is(err, dedupe.ErrNotFound) {
			t.Fatalf("Get after Discard: %v", err)
		}
		enqueue(t, q, k, long, dedupe.Claimed) // a later arrival is a new event
	}
	if err := q.Discard(context.Background(), key(t, "missing")); !errors.Is(err, dedupe.ErrNotFound) {
		t.Fatalf("Discard of a missing key: %v", err)
	}
}

func resendDead(t *testing.T, holder func() dedupe.Queue) {
	q := holder()
	k := key(t, "resend")
	enqueue(t, q, k, long, dedupe.Claimed)
	if err := q.Bury(context.Background(), k, failure(5), long); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, k, long, dedupe.Claimed)
	if r := get(t, q, k); r.State != dedupe.Queued || r.Attempts != 0 || r.Failure != nil {
		t.Fatalf("resent record %+v", r)
	}
}

// start marks k started on q when q is a [dedupe.Starter], as the stream
// does before a delivery.
func start(t *testing.T, q dedupe.Queue, keys ...string) {
	t.Helper()
	if s, ok := q.(dedupe.Starter); ok {
		if err := s.Start(context.Background(), keys); err != nil {
			t.Fatalf("Start(%q): %v", keys, err)
		}
	}
}

func attemptsOnAdoption(t *testing.T, holder func() dedupe.Queue) {
	a, b, c, d := holder(), holder(), holder(), holder()
	k := key(t, "attempts")
	enqueue(t, a, k, short, dedupe.Claimed)
	start(t, a, k)
	crash(t, a)
	// A resend meanwhile finds the event pending: it is adopted, with the
	// crash counted, not replaced with its attempts reset.
	enqueue(t, b, k, long, dedupe.Pending)
	if got := adopt(t, b, 10, short); len(got) != 1 || got[0].Attempts != 1 {
		t.Fatalf("first adoption %+v, want 1 attempt", got)
	}
	start(t, b, k)
	crash(t, b) // b dies too, delivering it
	if got := adopt(t, c, 10, long); len(got) != 1 || got[0].Attempts != 2 {
		t.Fatalf("second adoption %+v, want 2 attempts", got)
	}
	start(t, c, k)
	if err := c.Extend(context.Background(), []string{k}, 0); err != nil { // c gives it back, cleanly
		t.Fatal(err)
	}
	if got := adopt(t, d, 10, long); len(got) != 1 || got[0].Attempts != 2 {
		t.Fatalf("adoption after a give-back %+v, want still 2 attempts", got)
	}
	if r := get(t, d, k); r.Attempts != 2 {
		t.Fatalf("Get: %d attempts", r.Attempts)
	}
}

// crashCountsStarted: a [dedupe.Starter] counts a crash only against
// the events the crashed holder had started (issue #34, item 6: a crash
// loop buried a backlog that was never delivered).
func crashCountsStarted(t *testing.T, holder func() dedupe.Queue) {
	a := holder()
	if _, ok := a.(dedupe.Starter); !ok {
		t.Skip("not a dedupe.Starter: every crash counts against every event held")
	}
	b, c, d, e := holder(), holder(), holder(), holder()
	k1, k2 := key(t, "started"), key(t, "waiting")
	enqueue(t, a, k1, short, dedupe.Claimed)
	enqueue(t, a, k2, short, dedupe.Claimed)
	start(t, a, k1)
	start(t, b, k2) // not b's: changes nothing
	crash(t, a)
	attempts := func(q dedupe.Queue, want1, want2 int, crashed bool) {
		t.Helper()
		got := adopt(t, q, 10, short)
		n := map[string]int{}
		for _, it := range got {
			n[it.Key] = it.Attempts
			if it.Crashed != crashed {
				t.Errorf("%s adopted with Crashed %v, want %v", it.Key, it.Crashed, crashed)
			}
		}
		if len(got) != 2 || n[k1] != want1 || n[k2] != want2 {
			t.Fatalf("adopted %+v; want %s with %d attempts and %s with %d", got, k1, want1, k2, want2)
		}
	}
	attempts(b, 1, 0, true) // a was delivering k1, not k2
	crash(t, b)             // b started neither: its crash counts nothing
	attempts(c, 1, 0, true)
	start(t, c, k1, k2)
	crash(t, c)
	attempts(d, 2, 1, true)
	start(t, d, k1)
	if err := d.Extend(context.Background(), []string{k1, k2}, 0); err != nil { // given back, cleanly
		t.Fatal(err)
	}
	attempts(e, 2, 1, false)
}

func listFilters(t *testing.T, holder func() dedupe.Queue) {
	q := holder()
	src := "list-" + key(t, "src")
	var ks []string
	for i, typ := range []string{"a", "b", "a", "a"} {
		k := event.Key(src, fmt.Sprint(i))
		ks = append(ks, k)
		e := ev(k)
		e.Source, e.Type = src, typ
		if st, err := q.Enqueue(context.Background(), k, e, long); err != nil || st != dedupe.Claimed {
			t.Fatalf("Enqueue: %v %v", st, err)
		}
	}
	all, err := q.List(context.Background(), dedupe.Filter{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 {
		t.Fatalf("listed %d, want 4", len(all))
	}
	for i := range all {
		if all[i].Key != ks[i] || (i > 0 && all[i].Seq <= all[i-1].Seq) {
			t.Fatalf("order: %v", all)
		}
	}
	as, err := q.List(context.Background(), dedupe.Filter{Source: src, Type: "a", Limit: 2})
	if err != nil || len(as) != 2 || as[0].Key != ks[0] || as[1].Key != ks[2] {
		t.Fatalf("type a, first page: %v %v", as, err)
	}
	rest, err := q.List(context.Background(), dedupe.Filter{Source: src, Type: "a", After: as[1].Seq})
	if err != nil || len(rest) != 1 || rest[0].Key != ks[3] {
		t.Fatalf("type a, next page: %v %v", rest, err)
	}
}

// enqueueMany: a BatchQueue answers each event of a batch as Enqueue
// would: new ones claimed, a key twice in the batch claimed once, live
// ones pending or done. (Queues that are not BatchQueues skip it.)
func enqueueMany(t *testing.T, holder func() dedupe.Queue) {
	q, ok := holder().(dedupe.BatchQueue)
	if !ok {
		t.Skip("not a dedupe.BatchQueue")
	}
	done, pending, fresh := key(t, "many-done"), key(t, "many-pending"), key(t, "many-new")
	enqueue(t, q, done, long, dedupe.Claimed)
	if err := q.CommitMany(context.Background(), []string{done}, long); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, pending, long, dedupe.Claimed)
	keys := []string{fresh, done, pending, fresh}
	evs := []event.Event{ev(fresh), ev(done), ev(pending), ev(fresh)}
	for i := range 200 { // a page larger than any one statement
		k := key(t, fmt.Sprint("many-", i))
		keys, evs = append(keys, k), append(evs, ev(k))
	}
	sts, errs := q.EnqueueMany(context.Background(), keys, evs, long)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("EnqueueMany %d: %v", i, err)
		}
	}
	if sts[0] != dedupe.Claimed || sts[1] != dedupe.Done || sts[2] != dedupe.Pending || sts[3] != dedupe.Pending {
		t.Fatalf("states %v %v %v %v, want claimed done pending pending", sts[0], sts[1], sts[2], sts[3])
	}
	for i, st := range sts[4:] {
		if st != dedupe.Claimed {
			t.Fatalf("event %d of the page: %v", i, st)
		}
	}
	if r := get(t, q, fresh); r.State != dedupe.Queued || r.Event.ID != fresh {
		t.Fatalf("stored %+v", r)
	}
}

// wakesOtherHolders: for a queue that is a [dedupe.Waker], a holder that
// gives events back, a replay, and a holder that closes signal the other
// holders; an enqueue and a holder's own giving back do not. Skipped for a
// queue that is not a Waker.
func wakesOtherHolders(t *testing.T, holder func() dedupe.Queue) {
	a, b := holder(), holder()
	w, ok := b.(dedupe.Waker)
	if !ok {
		t.Skip("not a dedupe.Waker")
	}
	ready := w.AdoptReady()
	ctx := context.Background()
	expect := func(what string) {
		t.Helper()
		select {
		case <-ready:
		case <-time.After(10 * time.Second):
			t.Fatalf("no wake-up after %s", what)
		}
	}
	quietFor := func(what string) {
		t.Helper()
		select {
		case <-ready:
			t.Fatalf("a wake-up after %s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
	k := key(t, "wake")
	enqueue(t, a, k, long, dedupe.Claimed)
	quietFor("an enqueue")
	if err := a.Extend(ctx, []string{k}, 0); err != nil {
		t.Fatal(err)
	}
	expect("a give-back")
	if got := adopt(t, b, 10, long); len(got) != 1 {
		t.Fatalf("adopted %v after the give-back", keysOf(got))
	}
	if err := b.Bury(ctx, k, failure(1), long); err != nil {
		t.Fatal(err)
	}
	if err := a.Replay(ctx, k); err != nil {
		t.Fatal(err)
	}
	expect("a replay")
	if err := b.Extend(ctx, []string{k}, 0); err != nil {
		t.Fatal(err)
	}
	quietFor("its own give-back")
	c, ok := a.(interface{ Close() error })
	if !ok {
		return
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	expect("a holder's Close")
}
