// Package intaketest is the conformance suite every [intake.Queue] passes,
// run by each backend module against a real server.
package intaketest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

const (
	short = 300 * time.Millisecond
	long  = time.Hour
)

// RunQueue runs the queue conformance suite. For each subtest, open
// prepares fresh storage and returns a function that opens a holder on it:
// two holders from one storage share events and keys but not claims.
func RunQueue(t *testing.T, open func(t *testing.T) (holder func() intake.Queue)) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, holder func() intake.Queue)
	}{
		{"OneWinnerAmongConcurrentEnqueues", oneEnqueueWinner},
		{"DuplicateWhilePendingAndDone", pendingAndDone},
		{"AdoptAfterLeaseExpires", adoptAfterExpiry},
		{"AdoptKeepsTheWholeEvent", adoptWholeEvent},
		{"AdoptOldestFirstAndAtMostN", adoptOrder},
		{"ExtendKeepsAndZeroGivesBack", extend},
		{"ExtendOnlyByHolder", extendByHolder},
		{"CommitDeletesTheEvent", commitDeletes},
		{"ReleaseForgetsEverything", releaseForgets},
		{"RetentionExpiry", retention},
		{"CanceledContext", canceled},
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

func enqueue(t *testing.T, q intake.Queue, k string, lease time.Duration, want dedupe.State) {
	t.Helper()
	got, err := q.Enqueue(context.Background(), k, ev(k), lease)
	if err != nil {
		t.Fatalf("Enqueue(%q): %v", k, err)
	}
	if got != want {
		t.Fatalf("Enqueue(%q) = %v, want %v", k, got, want)
	}
}

func adopt(t *testing.T, q intake.Queue, n int, lease time.Duration) []intake.Stored {
	t.Helper()
	got, err := q.Adopt(context.Background(), n, lease)
	if err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	return got
}

func keysOf(items []intake.Stored) []string {
	ks := make([]string, len(items))
	for i, it := range items {
		ks[i] = it.Key
	}
	return ks
}

func oneEnqueueWinner(t *testing.T, holder func() intake.Queue) {
	k := key(t, "contended")
	holders := []intake.Queue{holder(), holder()}
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

func pendingAndDone(t *testing.T, holder func() intake.Queue) {
	q := holder()
	k := key(t, "a")
	enqueue(t, q, k, long, dedupe.Claimed)
	enqueue(t, q, k, long, dedupe.Pending)
	if err := q.Commit(context.Background(), k, long); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, k, long, dedupe.Done)
}

func adoptAfterExpiry(t *testing.T, holder func() intake.Queue) {
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

func adoptWholeEvent(t *testing.T, holder func() intake.Queue) {
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

func adoptOrder(t *testing.T, holder func() intake.Queue) {
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

func extend(t *testing.T, holder func() intake.Queue) {
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

func extendByHolder(t *testing.T, holder func() intake.Queue) {
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

func commitDeletes(t *testing.T, holder func() intake.Queue) {
	q := holder()
	k := key(t, "commit")
	enqueue(t, q, k, short, dedupe.Claimed)
	if err := q.Commit(context.Background(), k, long); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * short)
	if got := adopt(t, q, 10, long); len(got) != 0 {
		t.Fatalf("adopted a committed event: %v", keysOf(got))
	}
}

func releaseForgets(t *testing.T, holder func() intake.Queue) {
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

func retention(t *testing.T, holder func() intake.Queue) {
	q := holder()
	k := key(t, "retain")
	enqueue(t, q, k, long, dedupe.Claimed)
	if err := q.Commit(context.Background(), k, short); err != nil {
		t.Fatal(err)
	}
	enqueue(t, q, k, long, dedupe.Done)
	time.Sleep(2 * short)
	enqueue(t, q, k, long, dedupe.Claimed)
}

func canceled(t *testing.T, holder func() intake.Queue) {
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
