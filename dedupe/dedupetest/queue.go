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
		{"ReleaseForgetsEverything", releaseForgets},
		{"RetentionExpiry", retention},
		{"CanceledContext", canceled},
		{"AdoptKeepsNilAndEmptyPayloads", adoptNilPayload},
		{"HostileEventsByteExactOrInvalid", hostileEvents},
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

func adoptAfterExpiry(t *testing.T, holder func() dedupe.Queue) {
	a, b := holder(), holder()
	k := key(t, "crashed")
	enqueue(t, a, k, short, dedupe.Claimed)
	if got := adopt(t, b, 10, long); len(got) != 0 {
		t.Fatalf("adopted %v while the lease runs", keysOf(got))
	}
	time.Sleep(2 * short)
	got := adopt(t, b, 10, long)
	if len(got) != 1 || got[0].Key != k {
		t.Fatalf("adopted %v, want [%s]", keysOf(got), k)
	}
	if again := adopt(t, a, 10, long); len(again) != 0 {
		t.Fatalf("adopted twice: %v", keysOf(again))
	}
	// Adopted means claimed: a duplicate is still pending.
	enqueue(t, a, k, long, dedupe.Pending)
}

func adoptWholeEvent(t *testing.T, holder func() dedupe.Queue) {
	q := holder()
	k := key(t, "whole")
	enqueue(t, q, k, short, dedupe.Claimed)
	time.Sleep(2 * short)
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
	q := holder()
	var ks []string
	for i := range 5 {
		k := key(t, fmt.Sprint("n", i))
		ks = append(ks, k)
		enqueue(t, q, k, short, dedupe.Claimed)
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(2 * short)
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
	time.Sleep(2 * short)
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
	time.Sleep(2 * short)
	if q, ok := a.(interface {
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
	time.Sleep(2 * short)
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
		if st, err := a.Enqueue(context.Background(), it.Key, w, long); err != nil || st != dedupe.Done {
			t.Errorf("Enqueue after Commit: %v, %v; want done", st, err)
		}
	}
}

func commitMany(t *testing.T, holder func() dedupe.Queue) {
	q := holder()
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
	time.Sleep(2 * short)
	if got := adopt(t, q, 100, long); fmt.Sprint(keysOf(got)) != fmt.Sprint(ks[15:]) {
		t.Fatalf("adopted %v, want only the 5 not committed", keysOf(got))
	}
}
