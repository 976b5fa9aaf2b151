package dedupe_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// fakeDelivery is a Delivery of a key for one subscription.
type fakeDelivery struct{ key string }

func (d fakeDelivery) Key() string          { return d.key }
func (d fakeDelivery) Subscription() string { return "sub" }

// committer records the batches a TxBatch commits: it fails a batch that
// holds a poison event, settles the items it is told to, and panics on
// demand.
type committer struct {
	mu        sync.Mutex
	batches   [][]string // every attempt, by event ID
	committed map[string]int
	poison    string
	notHeld   string
	panicOn   string
}

func (c *committer) commit(_ context.Context, items []*dedupe.TxItem) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for _, it := range items {
		if it.Event.ID == c.notHeld {
			it.Settle(fmt.Errorf("taken over: %w", dedupe.ErrNotHeld))
			continue
		}
		ids = append(ids, it.Event.ID)
	}
	c.batches = append(c.batches, ids)
	if c.panicOn != "" && slices.Contains(ids, c.panicOn) {
		panic("handler bug")
	}
	if slices.Contains(ids, c.poison) {
		return errors.New("poison: cannot decode")
	}
	for _, id := range ids {
		c.committed[id]++
	}
	return nil
}

// handleAll calls Handle for n events at once and returns each one's
// result by ID.
func handleAll(tb *dedupe.TxBatch, n int) map[string]error {
	var mu sync.Mutex
	out := map[string]error{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("e%02d", i)
			err := tb.Handle(context.Background(), event.Event{ID: id}, fakeDelivery{key: id})
			mu.Lock()
			out[id] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func TestTxBatchCommitsFullBatches(t *testing.T) {
	c := &committer{committed: map[string]int{}}
	// A linger far longer than the calls take to arrive: every batch
	// waits until it is full.
	tb := dedupe.NewTxBatch(16, time.Minute, c.commit)
	res := handleAll(tb, 64)
	for id, err := range res {
		if err != nil || c.committed[id] != 1 {
			t.Fatalf("%s: %v, committed %d times", id, err, c.committed[id])
		}
	}
	if len(c.batches) != 4 {
		t.Fatalf("64 deliveries in %d transactions, want 4 of 16", len(c.batches))
	}
	for _, b := range c.batches {
		if len(b) != 16 {
			t.Fatalf("a batch of %d, want 16", len(b))
		}
	}
}

func TestTxBatchIsolatesAPoisonEvent(t *testing.T) {
	c := &committer{committed: map[string]int{}, poison: "e05", notHeld: "e09"}
	tb := dedupe.NewTxBatch(16, time.Minute, c.commit)
	res := handleAll(tb, 16)
	if res["e05"] == nil {
		t.Fatal("the poison event succeeded")
	}
	if !errors.Is(res["e09"], dedupe.ErrNotHeld) {
		t.Fatalf("the event taken over: %v, want ErrNotHeld", res["e09"])
	}
	for id, err := range res {
		if id == "e05" || id == "e09" {
			continue
		}
		if err != nil || c.committed[id] != 1 {
			t.Fatalf("%s beside the poison: %v, committed %d times", id, err, c.committed[id])
		}
	}
	if c.committed["e05"] != 0 || c.committed["e09"] != 0 {
		t.Fatalf("committed the poison %d times, the one taken over %d", c.committed["e05"], c.committed["e09"])
	}
	// Halving 15 to 1: a batch, then its halves down the poison's side.
	if n := len(c.batches); n > 1+2*4 {
		t.Fatalf("%d transactions to isolate one poison event among 16", n)
	}
	for _, b := range c.batches {
		if slices.Contains(b, "e09") {
			t.Fatal("a settled item was tried again")
		}
	}
}

func TestTxBatchPanicAnswersEveryCall(t *testing.T) {
	c := &committer{committed: map[string]int{}, panicOn: "e03"}
	tb := dedupe.NewTxBatch(8, time.Minute, c.commit)
	done := make(chan map[string]error)
	go func() { done <- handleAll(tb, 8) }()
	select {
	case res := <-done:
		if res["e03"] == nil {
			t.Fatal("the panicking event succeeded")
		}
		for id, err := range res {
			if id != "e03" && err != nil {
				t.Fatalf("%s: %v", id, err)
			}
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a panic in a batch left its calls waiting")
	}
	// And the batcher still works.
	if res := handleAll(tb, 8); res["e01"] != nil {
		t.Fatalf("after a panic: %v", res)
	}
}

func TestTxBatchLingersNoLongerThanItsLinger(t *testing.T) {
	c := &committer{committed: map[string]int{}}
	tb := dedupe.NewTxBatch(100, time.Millisecond, c.commit)
	if err := tb.Handle(context.Background(), event.Event{ID: "alone"}, fakeDelivery{key: "alone"}); err != nil {
		t.Fatal(err)
	}
	if c.committed["alone"] != 1 {
		t.Fatal("a lone delivery was not committed")
	}
}
