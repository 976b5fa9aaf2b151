package nats

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/relay"
)

// Feed is a [relay.Feed] on a JetStream stream, N_FEED (subject
// intake.N.feed), shared by relay replicas: an item's cursor is its
// stream sequence, and an append on any replica wakes the long polls held
// on every other, since a core subscription on the subject sees each
// message the stream stores.
type Feed struct {
	q       *Queue
	stream  jetstream.Stream
	subject string
	sub     *nats.Subscription

	mu      sync.Mutex
	changed chan struct{}
}

// Feed makes (or finds) the queue's feed stream, with the queue's
// replicas, and subscribes to its appends; Close the feed when done.
func (q *Queue) Feed(ctx context.Context) (*Feed, error) {
	f := &Feed{q: q, subject: q.root + ".feed", changed: make(chan struct{})}
	cctx, cancel := q.ctx(ctx)
	defer cancel()
	cfg := jetstream.StreamConfig{Name: q.name + "_FEED", Subjects: []string{f.subject}, Storage: jetstream.FileStorage, Replicas: q.replicas}
	s, err := q.js.CreateStream(cctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		s, err = q.js.Stream(cctx, cfg.Name)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: feed stream: %w", err)
	}
	f.stream = s
	if f.sub, err = q.nc.Subscribe(f.subject, func(*nats.Msg) { f.wake() }); err != nil {
		return nil, fmt.Errorf("nats: feed: %w", err)
	}
	return f, nil
}

// Close ends the feed's subscription.
func (f *Feed) Close() error { return f.sub.Unsubscribe() }

func (f *Feed) wake() {
	f.mu.Lock()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// Changed implements [relay.Feed].
func (f *Feed) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// Append implements [relay.Feed]: it returns once the stream stored e.
func (f *Feed) Append(ctx context.Context, e event.Event) error {
	if err := f.q.connected(); err != nil {
		return fmt.Errorf("nats: feed append: %w", err)
	}
	enc, err := e.MarshalBinary()
	if err != nil {
		return fmt.Errorf("nats: feed append: %w", err)
	}
	ctx, cancel := f.q.ctx(ctx)
	defer cancel()
	if _, err := f.q.js.Publish(ctx, f.subject, enc); err != nil {
		return fmt.Errorf("nats: feed append: %w", err)
	}
	return nil
}

// Read implements [relay.Feed], through a consumer of its own that starts
// after the cursor.
func (f *Feed) Read(ctx context.Context, after int64, limit int) ([]relay.Item, error) {
	if err := f.q.connected(); err != nil {
		return nil, fmt.Errorf("nats: feed read: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	ctx, cancel := f.q.ctx(ctx)
	defer cancel()
	c, err := f.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: uint64(after) + 1,
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, Replicas: 1, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: feed read: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.q.timeout)
		_ = f.stream.DeleteConsumer(dctx, c.CachedInfo().Name)
		cancel()
	}()
	want := int(min(c.CachedInfo().NumPending, uint64(limit)))
	var out []relay.Item
	for len(out) < want {
		batch, err := c.FetchNoWait(want - len(out))
		if err == nil {
			for m := range batch.Messages() {
				md, err := m.Metadata()
				if err != nil {
					return nil, fmt.Errorf("nats: feed read: %w", err)
				}
				it := relay.Item{Cursor: int64(md.Sequence.Stream), At: md.Timestamp}
				if err := it.Event.UnmarshalBinary(m.Data()); err != nil {
					return nil, fmt.Errorf("nats: feed item %d: %w", it.Cursor, err)
				}
				out = append(out, it)
			}
			err = batch.Error()
		}
		if err != nil && !errors.Is(err, nats.ErrNoResponders) {
			return nil, fmt.Errorf("nats: feed read: %w", err)
		}
		select { // not delivered yet, or the consumer not reachable yet
		case <-ctx.Done():
			return out, fmt.Errorf("nats: feed read: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return out, nil
}

// Floor implements [relay.Feed]: below the oldest item kept, or, with
// none kept, the last cursor given.
func (f *Feed) Floor(ctx context.Context) (int64, error) {
	if err := f.q.connected(); err != nil {
		return 0, fmt.Errorf("nats: feed floor: %w", err)
	}
	ctx, cancel := f.q.ctx(ctx)
	defer cancel()
	info, err := f.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("nats: feed floor: %w", err)
	}
	if info.State.Msgs == 0 {
		return int64(info.State.LastSeq), nil
	}
	return int64(info.State.FirstSeq) - 1, nil
}

// Trim implements [relay.Feed]: it purges the stream up to the first item
// stored at or after before.
func (f *Feed) Trim(ctx context.Context, before time.Time) error {
	if err := f.q.connected(); err != nil {
		return fmt.Errorf("nats: feed trim: %w", err)
	}
	ctx, cancel := f.q.ctx(ctx)
	defer cancel()
	info, err := f.stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("nats: feed trim: %w", err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	keepFrom := info.State.LastSeq + 1 // every item is older, unless one is found
	c, err := f.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &before, HeadersOnly: true,
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, Replicas: 1, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return fmt.Errorf("nats: feed trim: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), f.q.timeout)
		_ = f.stream.DeleteConsumer(dctx, c.CachedInfo().Name)
		cancel()
	}()
	if c.CachedInfo().NumPending > 0 {
		for {
			batch, err := c.FetchNoWait(1)
			if err == nil {
				got := false
				for m := range batch.Messages() {
					if md, err := m.Metadata(); err == nil {
						keepFrom, got = md.Sequence.Stream, true
					}
				}
				if got {
					break
				}
				err = batch.Error()
			}
			if err != nil && !errors.Is(err, nats.ErrNoResponders) {
				return fmt.Errorf("nats: feed trim: %w", err)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("nats: feed trim: %w", ctx.Err())
			case <-time.After(time.Millisecond):
			}
		}
	}
	if err := f.stream.Purge(ctx, jetstream.WithPurgeSequence(keepFrom)); err != nil {
		return fmt.Errorf("nats: feed trim: %w", err)
	}
	return nil
}

var _ relay.Feed = (*Feed)(nil)
