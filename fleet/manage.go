package fleet

import (
	"context"
	"math/rand/v2"
)

// Add adds a connection, first due at a random point of its first
// interval, so that connections added at once are not polled at once.
// Any replica may call it on a running fleet.
func (f *Fleet) Add(ctx context.Context, c Connection) error {
	iv := c.Interval
	if iv <= 0 {
		iv = f.cfg.interval
	}
	return f.store.Add(ctx, c, rand.N(iv))
}

// Get returns a connection.
func (f *Fleet) Get(ctx context.Context, id string) (Connection, error) { return f.store.Get(ctx, id) }

// List lists connections.
func (f *Fleet) List(ctx context.Context, fl Filter) ([]Connection, error) {
	return f.store.List(ctx, fl)
}

// Update changes a connection's interval or credential; a new
// credential resumes a connection the system paused.
func (f *Fleet) Update(ctx context.Context, id string, ch Change) (Connection, error) {
	return f.store.Update(ctx, id, ch)
}

// Pause stops polling a connection: by names who paused it (a person,
// never [PausedBySystem] from outside the fleet by convention). A poll in
// flight stops at its next page and writes nothing.
func (f *Fleet) Pause(ctx context.Context, id, by, reason string) error {
	return f.store.Pause(ctx, id, by, reason)
}

// Resume makes a paused connection due now.
func (f *Fleet) Resume(ctx context.Context, id string) error { return f.store.Resume(ctx, id) }

// Resync starts a connection over from cursor ("" for a full sync from
// the source's initial cursor), due now. With a time cursor, it is a
// lookback as deep as you like.
func (f *Fleet) Resync(ctx context.Context, id, cursor string) error {
	return f.store.Resync(ctx, id, cursor)
}

// Remove deletes a connection.
func (f *Fleet) Remove(ctx context.Context, id string) error { return f.store.Remove(ctx, id) }
