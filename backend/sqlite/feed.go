package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/relay"
)

// Feed is a [relay.Feed] in the backend's file: appends go through the
// writer (group commit) and are durable when Append returns.
type Feed struct {
	b       *Backend
	table   string
	mu      sync.Mutex
	changed chan struct{}
}

// Feed returns the relay feed kept in the backend's file.
func (b *Backend) Feed() *Feed {
	b.feedOnce.Do(func() {
		b.feed = &Feed{b: b, table: b.t.keys[:len(b.t.keys)-len("keys")] + "feed", changed: make(chan struct{})}
	})
	return b.feed
}

// Append implements [relay.Feed].
func (f *Feed) Append(ctx context.Context, e event.Event) error {
	enc, _ := e.MarshalBinary()
	err := f.b.exec(ctx, func(tx *sql.Tx, now int64) error {
		_, err := tx.Exec(`INSERT INTO `+f.table+` (at, event) VALUES (?, ?)`, now, enc)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: feed append: %w", err)
	}
	f.mu.Lock()
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
	return nil
}

// Read implements [relay.Feed].
func (f *Feed) Read(ctx context.Context, after int64, limit int) ([]relay.Item, error) {
	rows, err := f.b.db.QueryContext(ctx, `SELECT cursor, at, event FROM `+f.table+` WHERE cursor > ? ORDER BY cursor LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: feed read: %w", err)
	}
	defer rows.Close()
	var out []relay.Item
	for rows.Next() {
		var it relay.Item
		var at int64
		var enc []byte
		if err := rows.Scan(&it.Cursor, &at, &enc); err != nil {
			return nil, fmt.Errorf("sqlite: feed read: %w", err)
		}
		it.At = time.Unix(0, at)
		if err := it.Event.UnmarshalBinary(enc); err != nil {
			return nil, fmt.Errorf("sqlite: feed item %d: %w", it.Cursor, err)
		}
		out = append(out, it)
	}
	return out, rows.Err()
}

// Floor implements [relay.Feed]: below the oldest item kept, or, with
// none kept, the last cursor given.
func (f *Feed) Floor(ctx context.Context) (int64, error) {
	var floor int64
	err := f.b.db.QueryRowContext(ctx, `SELECT COALESCE((SELECT MIN(cursor) - 1 FROM `+f.table+`),
		(SELECT seq FROM sqlite_sequence WHERE name = ?), 0)`, f.table).Scan(&floor)
	if err != nil {
		return 0, fmt.Errorf("sqlite: feed floor: %w", err)
	}
	return floor, nil
}

// Changed implements [relay.Feed]; it sees this process's appends (one
// node: the SQLite file is not shared across machines).
func (f *Feed) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// Trim implements [relay.Feed].
func (f *Feed) Trim(ctx context.Context, before time.Time) error {
	err := f.b.exec(ctx, func(tx *sql.Tx, now int64) error {
		_, err := tx.Exec(`DELETE FROM `+f.table+` WHERE at < ?`, before.UnixNano())
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: feed trim: %w", err)
	}
	return nil
}

var _ relay.Feed = (*Feed)(nil)
