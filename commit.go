package intake

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// maxCommitBatch bounds the keys committed in one call of the store.
const maxCommitBatch = 1000

// committer commits the keys of entries every subscription acked, in
// batches, on a goroutine of its own that [Stream.Run] starts and stops:
// an Ack appends and returns. A batch whose commit fails is tried again
// with backoff; its entries keep their slots (and, with a durable queue,
// their renewed claims) meanwhile, so nothing is redelivered because the
// store was briefly away.
type committer struct {
	s    *Stream
	mu   sync.Mutex
	todo []*entry
	keys map[string]struct{} // of the acked entries added and not yet committed
	wake chan struct{}
}

func newCommitter(s *Stream) *committer {
	return &committer{s: s, keys: make(map[string]struct{}), wake: make(chan struct{}, 1)}
}

// add hands en, which every subscription is done with, to the committer.
// Only an acked entry's key counts as done meanwhile: a dead or discarded
// one was not handled, and a resend of it must be told to come back.
func (c *committer) add(en *entry) {
	c.mu.Lock()
	c.todo = append(c.todo, en)
	if en.failure.Load() == nil && !en.discarded.Load() {
		c.keys[en.key] = struct{}{}
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// has reports whether key was acked by every subscription and waits for
// its commit: a duplicate of it is done, though the store still says
// pending.
func (c *committer) has(key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.keys[key]
	return ok
}

func (c *committer) take() []*entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.todo), maxCommitBatch)
	if n == 0 {
		return nil
	}
	batch := make([]*entry, n)
	copy(batch, c.todo)
	c.todo = append(c.todo[:0], c.todo[n:]...)
	return batch
}

// run commits what is added until stop closes, then commits what is left,
// trying for a few seconds at most, and returns.
func (c *committer) run(stop <-chan struct{}) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	b.MaxElapsedTime = 0 // a store outage lasts what it lasts
	b.Reset()
	var failed []*entry // a batch to try again
	for {
		batch := failed
		if batch == nil {
			c.linger(stop)
			batch = c.take()
		}
		if batch == nil {
			select {
			case <-c.wake:
				continue
			case <-stop:
			}
			c.flush()
			return
		}
		if c.commit(batch) {
			failed = nil
			b.Reset()
			continue
		}
		failed = batch
		t := time.NewTimer(b.NextBackOff())
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			c.flush()
			return
		}
	}
}

// Lingering: with a durable queue every commit is a transaction, and a
// batch of a few keys costs about what a batch of hundreds does. Nobody
// waits for a commit (Ack has returned), so a small batch waits up to
// commitLinger for more keys, up to lingerBatch of them: fewer, larger
// commits, a few milliseconds later. The memory store does not linger.
const (
	commitLinger = 5 * time.Millisecond
	lingerBatch  = 128
)

// linger waits, while fewer than lingerBatch keys wait to be committed,
// up to commitLinger for more; it returns at once when none wait.
func (c *committer) linger(stop <-chan struct{}) {
	if c.s.cfg.queue == nil {
		return
	}
	n := c.pending()
	if n == 0 || n >= lingerBatch {
		return
	}
	t := time.NewTimer(commitLinger)
	defer t.Stop()
	for c.pending() < lingerBatch {
		select {
		case <-c.wake:
		case <-t.C:
			return
		case <-stop:
			return
		}
	}
}

func (c *committer) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.todo)
}

// flush makes a last attempt, bounded in time, at what is left; entries
// that still fail stay live, and Run gives them back.
func (c *committer) flush() {
	deadline := time.Now().Add(5 * time.Second)
	for batch := c.take(); batch != nil && time.Now().Before(deadline); batch = c.take() {
		c.commit(batch)
	}
}

// commit finishes a batch and frees its slots; it reports success. Most
// entries are committed, in one call; an entry a subscription gave up on
// is buried (kept as dead), and a discarded one released.
func (c *committer) commit(batch []*entry) bool {
	s := c.s
	keys := make([]string, 0, len(batch))
	var other []*entry
	for _, en := range batch {
		if en.lost.Load() || en.txCommitted.Load() {
			continue // another holder has it, or a transaction committed it: nothing to write
		}
		if en.discarded.Load() || en.failure.Load() != nil {
			other = append(other, en)
			continue
		}
		keys = append(keys, en.key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if len(keys) > 0 {
		err = s.keys.commit(ctx, keys, s.cfg.retention)
	}
	for _, en := range other {
		if err != nil {
			break
		}
		switch f := en.failure.Load(); {
		case en.discarded.Load():
			err = s.keys.release(ctx, en.key)
		default:
			err = s.keys.bury(ctx, en, *f, s.cfg.retention)
		}
	}
	if err != nil {
		s.logs.Log(s.log, slog.LevelError, "commit", "intake: commit failed; trying again", "count", len(batch), "err", err)
		return false
	}
	keys = keys[:0]
	for _, en := range batch {
		keys = append(keys, en.key)
	}
	c.mu.Lock()
	for _, k := range keys {
		delete(c.keys, k)
	}
	c.mu.Unlock()
	s.committed(batch)
	return true
}
