// Package pollertest is the conformance suite for [poller.Checkpoint] and
// [poller.Lease] implementations, run by each backend module against a
// real server.
package pollertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/poller"
)

func name(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// RunCheckpoint checks a Checkpoint: nothing saved loads as "", the last
// save wins, names are independent.
func RunCheckpoint(t *testing.T, cp poller.Checkpoint) {
	t.Helper()
	ctx := context.Background()
	a, b := name("cp-a"), name("cp-b")
	load := func(n string) string {
		t.Helper()
		c, err := cp.Load(ctx, n)
		if err != nil {
			t.Fatalf("Load(%q): %v", n, err)
		}
		return c
	}
	if c := load(a); c != "" {
		t.Fatalf("Load of a new name = %q", c)
	}
	for _, c := range []string{"cursor-1", "cursor-2", "link:https://api.example.com/events?page=3&x=ü"} {
		if err := cp.Save(ctx, a, c); err != nil {
			t.Fatal(err)
		}
		if got := load(a); got != c {
			t.Fatalf("Load = %q, want %q", got, c)
		}
	}
	if c := load(b); c != "" {
		t.Fatalf("another name loads %q", c)
	}
}

// RunLease checks Lease implementations made by open, one per replica:
// one of several concurrent acquirers wins; the holder renews; nobody else
// acquires until the lease expires or is released; a holder that lost the
// lease cannot renew it.
//
// The lease's time to live starts at 400 ms and is derived from what the
// server is measured to take: a round whose calls were too slow to judge
// (a step that must happen within the lease ran after it could have
// expired, on a loaded machine or a cluster electing a leader) runs again
// with twice the time to live, up to 13 s, instead of failing.
func RunLease(t *testing.T, open func() poller.Lease) {
	t.Helper()
	replicas := []poller.Lease{open(), open(), open()}
	for ttl := 400 * time.Millisecond; ; ttl *= 2 {
		if leaseRound(t, replicas, ttl) {
			return
		}
		if ttl > 6*time.Second {
			t.Fatalf("every round was too slow to judge, the last with a %v lease", ttl)
		}
		t.Logf("a %v lease was too short to judge on this machine; again with %v", ttl, 2*ttl)
	}
}

// leaseRound runs the lease checks with one time to live; it returns
// false when a call took too long for the check that follows to hold.
func leaseRound(t *testing.T, replicas []poller.Lease, ttl time.Duration) bool {
	t.Helper()
	ctx := context.Background()
	n := name("lease")

	var mu sync.Mutex
	var winners []int
	var wg sync.WaitGroup
	for i, l := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := l.Acquire(ctx, n, ttl)
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				mu.Lock()
				winners = append(winners, i)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d replicas acquired the lease, want 1", len(winners))
	}
	leader := replicas[winners[0]]
	other := replicas[(winners[0]+1)%3]

	acquired := time.Now() // the lease ends no sooner than ttl after this
	if ok, err := leader.Acquire(ctx, n, ttl); err != nil || !ok {
		if time.Since(acquired) > ttl/2 {
			return false
		}
		t.Fatalf("the holder's Acquire again = %v, %v", ok, err)
	}
	time.Sleep(ttl/2 - min(time.Since(acquired), ttl/2))
	renewed := time.Now()
	if renewed.Sub(acquired) > ttl*3/4 {
		return false // the lease may have run out before the renewal
	}
	ok, err := leader.Renew(ctx, n, ttl)
	renewDone := time.Now()
	if err != nil || !ok {
		if renewDone.Sub(acquired) >= ttl {
			return false
		}
		t.Fatalf("Renew by the holder = %v, %v", ok, err)
	}
	// Renewed: it ends no sooner than ttl after renewed, no later than ttl
	// after renewDone.
	time.Sleep(ttl*3/4 - min(time.Since(renewed), ttl*3/4))
	ok, _ = other.Acquire(ctx, n, ttl)
	if ok && time.Since(renewed) < ttl {
		t.Fatal("acquired a renewed lease")
	}
	if ok {
		return false // too slow: it may have expired
	}
	if ok, _ := other.Renew(ctx, n, ttl); ok {
		t.Fatal("a non-holder renewed the lease")
	}

	time.Sleep(time.Until(renewDone.Add(ttl + 100*time.Millisecond))) // expired
	if ok, err := other.Acquire(ctx, n, ttl); err != nil || !ok {
		t.Fatalf("Acquire after expiry = %v, %v", ok, err)
	}
	otherAcquired := time.Now()
	if ok, _ := leader.Renew(ctx, n, ttl); ok {
		if time.Since(otherAcquired) >= ttl {
			return false
		}
		t.Fatal("the old holder renewed a lease it lost")
	}
	if err := leader.Release(ctx, n); err != nil {
		t.Fatal(err)
	}
	if ok, _ := leader.Acquire(ctx, n, ttl); ok {
		if time.Since(otherAcquired) >= ttl {
			return false
		}
		t.Fatal("the old holder's Release freed the new holder's lease")
	}
	if err := other.Release(ctx, n); err != nil {
		t.Fatal(err)
	}
	if ok, err := leader.Acquire(ctx, n, ttl); err != nil || !ok {
		t.Fatalf("Acquire after Release = %v, %v", ok, err)
	}
	_ = leader.Release(ctx, n)
	return true
}
