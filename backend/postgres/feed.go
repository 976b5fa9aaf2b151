package postgres

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/relay"
)

// Feed is a [relay.Feed] in PostgreSQL, shared by relay replicas: an
// append on one wakes the long polls held on every other, through
// LISTEN/NOTIFY on a connection the feed keeps for it.
type Feed struct {
	b       *Backend
	table   string
	channel string
	mu      sync.Mutex
	changed chan struct{}
	stop    context.CancelFunc
	done    chan struct{}
}

// Feed returns the relay feed in the backend's database. The first call
// starts a listener goroutine, which Close stops.
func (b *Backend) Feed() *Feed {
	b.feedOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		f := &Feed{b: b, table: b.prefix + "feed", channel: b.prefix + "feed", changed: make(chan struct{}),
			stop: cancel, done: make(chan struct{})}
		go f.listen(ctx)
		b.feed = f
	})
	return b.feed
}

// wake closes the current Changed channel.
func (f *Feed) wake() {
	f.mu.Lock()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// listen waits for notifications on a connection of its own until ctx
// ends; after losing it, it wakes every waiter (to read again) and
// reconnects after a second.
func (f *Feed) listen(ctx context.Context) {
	defer close(f.done)
	for ctx.Err() == nil {
		c, err := f.b.pool.Acquire(ctx)
		if err == nil {
			conn := c.Hijack()
			if _, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{f.channel}.Sanitize()); err == nil {
				for {
					if _, err = conn.WaitForNotification(ctx); err != nil {
						break
					}
					f.wake()
				}
			}
			_ = conn.Close(context.Background())
		}
		f.wake()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (f *Feed) close() {
	f.stop()
	<-f.done
}

// Append implements [relay.Feed]: the insert and the notification commit
// together.
func (f *Feed) Append(ctx context.Context, e event.Event) error {
	enc, _ := e.MarshalBinary()
	_, err := f.b.pool.Exec(ctx, `WITH ins AS (INSERT INTO `+f.table+` (event) VALUES ($1) RETURNING cursor)
		SELECT pg_notify($2, cursor::text) FROM ins`, enc, f.channel)
	if err != nil {
		return fmt.Errorf("postgres: feed append: %w", err)
	}
	f.wake() // this replica's waiters need not wait for the round trip
	return nil
}

// Read implements [relay.Feed].
func (f *Feed) Read(ctx context.Context, after int64, limit int) ([]relay.Item, error) {
	rows, err := f.b.pool.Query(ctx, `SELECT cursor, at, event FROM `+f.table+` WHERE cursor > $1 ORDER BY cursor LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: feed read: %w", err)
	}
	defer rows.Close()
	var out []relay.Item
	for rows.Next() {
		var it relay.Item
		var enc []byte
		if err := rows.Scan(&it.Cursor, &it.At, &enc); err != nil {
			return nil, fmt.Errorf("postgres: feed read: %w", err)
		}
		if err := it.Event.UnmarshalBinary(enc); err != nil {
			return nil, fmt.Errorf("postgres: feed item %d: %w", it.Cursor, err)
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// Floor implements [relay.Feed]: below the oldest item kept, or, with
// none kept, the last cursor given.
func (f *Feed) Floor(ctx context.Context) (int64, error) {
	var floor int64
	err := f.b.pool.QueryRow(ctx, `SELECT COALESCE((SELECT MIN(cursor) - 1 FROM `+f.table+`),
		(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM `+f.table+`_cursor_seq), 0)`).Scan(&floor)
	if err != nil {
		return 0, fmt.Errorf("postgres: feed floor: %w", err)
	}
	return floor, nil
}

// Changed implements [relay.Feed].
func (f *Feed) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// Trim implements [relay.Feed].
func (f *Feed) Trim(ctx context.Context, before time.Time) error {
	if _, err := f.b.pool.Exec(ctx, `DELETE FROM `+f.table+` WHERE at < $1`, before); err != nil {
		return fmt.Errorf("postgres: feed trim: %w", err)
	}
	return nil
}

var _ relay.Feed = (*Feed)(nil)
