// Package dedupetest is the conformance suite every [dedupe.Store] passes:
// the in-memory store here, and each backend module's store against a real
// server.
//
// Call [Run] from a test with a function that returns a fresh store:
//
//	func TestConformance(t *testing.T) {
//		dedupetest.Run(t, func(t *testing.T) dedupe.Store { return dedupe.NewMemory() })
//	}
//
// The suite uses real time with short leases (a few hundred milliseconds in
// all) so that it exercises a server's own expiry, and it uses keys unique
// to each run so that stores sharing a database do not collide.
package dedupetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/dedupe"
)

// Short durations used by the expiry tests. A store must honour leases and
// retention at this resolution (Redis PX, Postgres timestamps, SQLite
// milliseconds all do).
const (
	shortTTL = 150 * time.Millisecond
	long     = time.Hour
)

// Run runs the conformance suite against stores made by newStore, one per
// subtest.
func Run(t *testing.T, newStore func(t *testing.T) dedupe.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s dedupe.Store, key func(string) string)
	}{
		{"OneWinnerAmongConcurrentClaims", oneWinner},
		{"PendingThenDone", pendingThenDone},
		{"LeaseExpiryLetsNewClaimWin", leaseExpiry},
		{"ReleaseLetsNewClaimWin", release},
		{"ReleaseOfDoneOrAbsentKeyChangesNothing", releaseDone},
		{"RetentionExpiry", retentionExpiry},
		{"CommitWithoutClaim", commitWithoutClaim},
		{"DistinctKeysIndependent", distinctKeys},
		{"CanceledContext", canceledContext},
		{"DoneUntilWithoutClaiming", doneUntil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			prefix := uniquePrefix(t)
			tt.fn(t, s, func(k string) string { return prefix + k })
		})
	}
}

func uniquePrefix(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "dedupetest:" + hex.EncodeToString(b[:]) + ":"
}

func claim(t *testing.T, s dedupe.Store, key string, lease time.Duration, want dedupe.State) {
	t.Helper()
	got, err := s.Claim(context.Background(), key, lease)
	if err != nil {
		t.Fatalf("Claim(%q): %v", key, err)
	}
	if got != want {
		t.Fatalf("Claim(%q) = %v, want %v", key, got, want)
	}
}

func commit(t *testing.T, s dedupe.Store, key string, retain time.Duration) {
	t.Helper()
	if err := s.Commit(context.Background(), key, retain); err != nil {
		t.Fatalf("Commit(%q): %v", key, err)
	}
}

func oneWinner(t *testing.T, s dedupe.Store, key func(string) string) {
	const n = 100
	k := key("contended")
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		mu      sync.Mutex
		results = map[dedupe.State]int{}
		errs    []error
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			st, err := s.Claim(context.Background(), k, long)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			results[st]++
		}()
	}
	close(start)
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d claims failed, first: %v", len(errs), errs[0])
	}
	if results[dedupe.Claimed] != 1 || results[dedupe.Pending] != n-1 {
		t.Fatalf("results = %v, want 1 claimed and %d pending", results, n-1)
	}
}

func pendingThenDone(t *testing.T, s dedupe.Store, key func(string) string) {
	k := key("a")
	claim(t, s, k, long, dedupe.Claimed)
	claim(t, s, k, long, dedupe.Pending)
	commit(t, s, k, long)
	claim(t, s, k, long, dedupe.Done)
	claim(t, s, k, long, dedupe.Done)
}

// within claims key as want when less than shortTTL has passed since
// start, and otherwise only claims it: a slow machine (the race detector
// on a transpiled SQLite) may take longer than the short lease itself,
// which says nothing against the store.
func within(t *testing.T, s dedupe.Store, start time.Time, key string, want dedupe.State) {
	t.Helper()
	got, err := s.Claim(context.Background(), key, long)
	if err != nil {
		t.Fatalf("Claim(%q): %v", key, err)
	}
	if time.Since(start) >= shortTTL {
		// Too late to check (a loaded machine, the race detector). If the
		// claim took the expired key, give it back, so that what the
		// caller checks next finds the key as it would have.
		t.Logf("Claim(%q) = %v after the short lease ran out; not checked", key, got)
		if got == dedupe.Claimed {
			if err := s.Release(context.Background(), key); err != nil {
				t.Fatalf("Release(%q): %v", key, err)
			}
		}
		return
	}
	if got != want {
		t.Fatalf("Claim(%q) = %v, want %v", key, got, want)
	}
}

func leaseExpiry(t *testing.T, s dedupe.Store, key func(string) string) {
	k := key("lease")
	start := time.Now()
	claim(t, s, k, shortTTL, dedupe.Claimed)
	within(t, s, start, k, dedupe.Pending)
	time.Sleep(2 * shortTTL)
	claim(t, s, k, long, dedupe.Claimed)
	claim(t, s, k, long, dedupe.Pending)
}

func release(t *testing.T, s dedupe.Store, key func(string) string) {
	k := key("release")
	claim(t, s, k, long, dedupe.Claimed)
	if err := s.Release(context.Background(), k); err != nil {
		t.Fatalf("Release: %v", err)
	}
	claim(t, s, k, long, dedupe.Claimed)
	claim(t, s, k, long, dedupe.Pending)
}

func releaseDone(t *testing.T, s dedupe.Store, key func(string) string) {
	k := key("done")
	claim(t, s, k, long, dedupe.Claimed)
	commit(t, s, k, long)
	if err := s.Release(context.Background(), k); err != nil {
		t.Fatalf("Release of a done key: %v", err)
	}
	claim(t, s, k, long, dedupe.Done)
	if err := s.Release(context.Background(), key("absent")); err != nil {
		t.Fatalf("Release of an absent key: %v", err)
	}
	claim(t, s, key("absent"), long, dedupe.Claimed)
}

func retentionExpiry(t *testing.T, s dedupe.Store, key func(string) string) {
	k := key("retain")
	claim(t, s, k, long, dedupe.Claimed)
	start := time.Now()
	commit(t, s, k, shortTTL)
	within(t, s, start, k, dedupe.Done)
	time.Sleep(2 * shortTTL)
	claim(t, s, k, long, dedupe.Claimed)
}

// doneUntil checks a [dedupe.DoneLookup]: an absent or pending key is not
// done, and asking does not claim it; a committed key is done until its
// retention ends, then not. A store without it passes.
func doneUntil(t *testing.T, s dedupe.Store, key func(string) string) {
	l, ok := s.(dedupe.DoneLookup)
	if !ok {
		t.Skip("the store has no DoneUntil")
	}
	ctx := context.Background()
	isDone := func(k string) (time.Time, bool) {
		t.Helper()
		until, done, err := l.DoneUntil(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		return until, done
	}
	k := key("done")
	if _, done := isDone(k); done {
		t.Fatal("an absent key is done")
	}
	claim(t, s, k, long, dedupe.Claimed) // asking claimed nothing
	if _, done := isDone(k); done {
		t.Fatal("a pending key is done")
	}
	before := time.Now()
	commit(t, s, k, long)
	until, done := isDone(k)
	if !done {
		t.Fatal("a committed key is not done")
	}
	// Within a second of the commit's time plus the retention (the
	// server's clock may stray from this one by a little).
	if want := before.Add(long); until.Before(want.Add(-time.Second)) || until.After(time.Now().Add(long).Add(time.Second)) {
		t.Fatalf("done until %v, want about %v", until, want)
	}
	short := key("short")
	commit(t, s, short, shortTTL)
	time.Sleep(2 * shortTTL)
	if _, done := isDone(short); done {
		t.Fatal("done after its retention ended")
	}
}

func commitWithoutClaim(t *testing.T, s dedupe.Store, key func(string) string) {
	k := key("unclaimed")
	commit(t, s, k, long)
	claim(t, s, k, long, dedupe.Done)
}

func distinctKeys(t *testing.T, s dedupe.Store, key func(string) string) {
	a, b, c := key("x"), key("y"), key("z")
	claim(t, s, a, long, dedupe.Claimed)
	claim(t, s, b, long, dedupe.Claimed)
	commit(t, s, a, long)
	if err := s.Release(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	claim(t, s, a, long, dedupe.Done)
	claim(t, s, b, long, dedupe.Claimed)
	claim(t, s, c, long, dedupe.Claimed)
}

func canceledContext(t *testing.T, s dedupe.Store, key func(string) string) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k := key("canceled")
	if _, err := s.Claim(ctx, k, long); !errors.Is(err, context.Canceled) {
		t.Fatalf("Claim with canceled ctx: err = %v, want context.Canceled", err)
	}
	if err := s.Commit(ctx, k, long); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit with canceled ctx: err = %v, want context.Canceled", err)
	}
	if err := s.Release(ctx, k); !errors.Is(err, context.Canceled) {
		t.Fatalf("Release with canceled ctx: err = %v, want context.Canceled", err)
	}
	// Nothing was recorded by the canceled calls.
	claim(t, s, k, long, dedupe.Claimed)
}
