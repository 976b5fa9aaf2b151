package dedupe

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/intakehq/intake/event"
)

// TxItem is one delivery in a batch of [TxBatch].
type TxItem struct {
	Event    event.Event
	Delivery Delivery

	settled bool
	err     error
}

// Settle marks an item the commit function resolved without the
// handler: acked already by a transaction that committed (err nil: the
// delivery is acked), or not held any more (err wraps [ErrNotHeld]). A
// settled item is left out of the handler's events and out of any retry
// of the batch.
func (it *TxItem) Settle(err error) { it.settled, it.err = true, err }

// Settled reports whether Settle was called.
func (it *TxItem) Settled() bool { return it.settled }

// TxCommit runs one transaction for a batch: it acks every item in it
// (settling those it cannot ack), runs the handler on the events of the
// items left, and commits. It returns nil once committed; an error rolls
// back every item not settled.
type TxCommit func(ctx context.Context, items []*TxItem) error

// TxBatch groups the deliveries that concurrent handler calls (a
// subscription's workers) bring into batches, each committed in one
// transaction by a backend's [TxCommit]: group commit for the handler's
// own writes. A batch takes what is waiting, up to max, after waiting at
// most linger for more. When a batch fails it is split in two and each
// half tried on its own, down to single events, so that one poison event
// fails alone and its neighbours commit without spending an attempt.
// Backends build their batched transactional handlers on it.
type TxBatch struct {
	max    int
	linger time.Duration
	commit TxCommit

	mu      sync.Mutex
	pending []*txCall
	leading bool
	arrived chan struct{} // a call joined while the leader lingers
}

type txCall struct {
	ctx  context.Context
	item TxItem
	done chan error
}

// NewTxBatch returns a batcher of up to max deliveries (at least 1),
// lingering at most linger for a batch to fill.
func NewTxBatch(max int, linger time.Duration, commit TxCommit) *TxBatch {
	if max < 1 || linger < 0 || commit == nil {
		panic(fmt.Sprintf("dedupe: NewTxBatch(%d, %v) with a nil commit or out of range", max, linger))
	}
	return &TxBatch{max: max, linger: linger, commit: commit, arrived: make(chan struct{}, 1)}
}

// Handle adds a delivery to the next batch and returns once the batch
// that holds it committed (nil), or with its own error. The caller whose
// call finds no batch forming leads: it lingers, takes the batch, passes
// the lead on (to a goroutine, when calls are waiting; none runs between
// batches), and commits; several batches may be in flight at once.
func (b *TxBatch) Handle(ctx context.Context, e event.Event, d Delivery) error {
	c := &txCall{ctx: ctx, item: TxItem{Event: e, Delivery: d}, done: make(chan error, 1)}
	b.mu.Lock()
	b.pending = append(b.pending, c)
	lead := !b.leading
	b.leading = true
	b.mu.Unlock()
	select {
	case b.arrived <- struct{}{}:
	default:
	}
	if lead {
		b.lead(ctx)
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		// The batch may still commit it; the stream retries what it
		// did not see acked, and the ack is fenced.
		return ctx.Err()
	}
}

// lead takes one batch, hands the lead to a goroutine of its own if more
// calls are waiting (or gives it up), and commits the batch: batches
// form while others' transactions are in flight.
func (b *TxBatch) lead(ctx context.Context) {
	b.mu.Lock()
	n := len(b.pending)
	b.mu.Unlock()
	if n > 0 && n < b.max && b.linger > 0 {
		t := time.NewTimer(b.linger)
	wait:
		for {
			select {
			case <-t.C:
				break wait
			case <-b.arrived:
				b.mu.Lock()
				n = len(b.pending)
				b.mu.Unlock()
				if n >= b.max {
					t.Stop()
					break wait
				}
			}
		}
	}
	b.mu.Lock()
	take := min(len(b.pending), b.max)
	calls := b.pending[:take:take]
	b.pending = b.pending[take:]
	b.mu.Unlock()
	var live []*txCall
	for _, c := range calls {
		if err := c.ctx.Err(); err != nil {
			c.done <- err
			continue
		}
		live = append(live, c)
	}
	// The lead passes on before this batch runs, so that the next batch
	// forms (and commits) while this one's transaction is in flight.
	ctx = context.WithoutCancel(ctx)
	b.mu.Lock()
	if len(b.pending) == 0 {
		b.leading = false
	} else {
		go b.lead(ctx)
	}
	b.mu.Unlock()
	b.run(ctx, live)
}

// run commits calls in one transaction, or splits them when it fails.
func (b *TxBatch) run(ctx context.Context, calls []*txCall) {
	if len(calls) == 0 {
		return
	}
	items := make([]*TxItem, len(calls))
	for i, c := range calls {
		items[i] = &c.item
	}
	err := b.safeCommit(ctx, items)
	var open []*txCall
	for _, c := range calls {
		switch {
		case c.item.settled:
			c.done <- c.item.err
		case err == nil:
			c.done <- nil
		default:
			open = append(open, c)
		}
	}
	if len(open) == 0 {
		return
	}
	if len(open) == 1 {
		open[0].done <- err
		return
	}
	half := len(open) / 2
	b.run(ctx, open[:half])
	b.run(ctx, open[half:])
}

// safeCommit is commit, with a panic (of the handler) as its error: the
// other calls of the batch must still be answered.
func (b *TxBatch) safeCommit(ctx context.Context, items []*TxItem) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("dedupe: a batch's transaction panicked: %v", r)
		}
	}()
	return b.commit(ctx, items)
}
