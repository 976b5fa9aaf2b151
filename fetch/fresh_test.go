package fetch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fetch"
	"github.com/intakehq/intake/intaketest"
)

// versioned is an API whose one object changes: each GET answers the
// version current when the request arrived, after gate lets it go.
type versioned struct {
	version  atomic.Int64
	gets     atomic.Int64
	arrived  chan int64    // each request's version, as it arrives
	gate     chan struct{} // a request waits for a receive
	blocking atomic.Bool
}

func (v *versioned) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := v.version.Load()
	v.gets.Add(1)
	select {
	case v.arrived <- n:
	default:
	}
	if v.blocking.Load() {
		<-v.gate
	}
	fmt.Fprintf(w, `{"id":"obj_000","version":%d}`, n)
}

// An event is never served by a fetch that started before it arrived:
// evt_B, sent after the object changed while evt_A's fetch was in
// flight, gets the new state; evt_C, sent after another change within
// the old window, gets the newest. Issue #34, item 1.
func TestNoEventServedByAFetchOlderThanItself(t *testing.T) {
	api := &versioned{arrived: make(chan int64, 16), gate: make(chan struct{})}
	api.version.Store(1)
	api.blocking.Store(true)
	srv := httptest.NewServer(api)
	defer srv.Close()
	f := fetch.New(object, fetch.HTTP(srv.Client(), nil))

	s := intake.New(intake.WithLogger(quiet))
	var mu sync.Mutex
	got := map[string]string{}
	handled := make(chan string, 16)
	s.Handle(f.Handle(func(ctx context.Context, e event.Event) error {
		mu.Lock()
		got[e.ID] = string(e.Payload)
		mu.Unlock()
		handled <- e.ID
		return nil
	}), intake.WithWorkers(4))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	wait := func(id string) {
		t.Helper()
		select {
		case h := <-handled:
			if h != id {
				t.Fatalf("handled %s, want %s", h, id)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s not handled", id)
		}
	}
	put := func(i int) {
		t.Helper()
		if err := intaketest.Put(context.Background(), s, thin(srv.URL, i, 0)); err != nil {
			t.Fatal(err)
		}
	}

	put(0) // evt_0000, sent at version 1
	if v := <-api.arrived; v != 1 {
		t.Fatalf("first fetch saw version %d", v)
	}
	api.version.Store(2)
	// evt_0001, sent at version 2, while the fetch of version 1 is in
	// flight; the pause lets it reach the fetcher, where it must not join
	// that fetch.
	put(1)
	time.Sleep(50 * time.Millisecond)
	api.blocking.Store(false)
	close(api.gate)
	for range 2 {
		select {
		case <-handled:
		case <-time.After(30 * time.Second):
			t.Fatal("evt_0000 and evt_0001 not handled")
		}
	}
	api.version.Store(3)
	put(2) // evt_0002, sent at version 3, well within the old one-second window
	wait("evt_0002")

	mu.Lock()
	defer mu.Unlock()
	for id, want := range map[string]int{"evt_0000": 1, "evt_0001": 2, "evt_0002": 3} {
		var body struct{ Version int }
		fmt.Sscanf(got[id], `{"id":"obj_000","version":%d}`, &body.Version)
		if body.Version < want {
			t.Errorf("%s (sent at version %d) handled with %s", id, want, got[id])
		}
	}
}
