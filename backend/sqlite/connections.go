package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/intakehq/intake/fleet"
)

// Connections returns the backend's [fleet.Store]: a poller fleet's
// connections in the table {prefix}connections of the backend's file.
// SQLite serves one node: the replicas of a fleet on it are processes
// sharing the file, whose writes take turns; for replicas on several
// machines, use backend/postgres.
func (b *Backend) Connections() *Connections { return &Connections{b: b, t: b.t.connections} }

// Connections is the [fleet.Store] of [Backend.Connections].
type Connections struct {
	b *Backend
	t string
}

const sqliteConnColumns = `id, source, interval_ns, credential, cursor, paused, reason, next_due, errors, last_poll, last_error, polls, events`

func scanConn(row scanner, extra ...any) (fleet.Connection, error) {
	var c fleet.Connection
	var iv, due, last int64
	dest := append([]any{&c.ID, &c.Source, &iv, &c.Credential, &c.Cursor, &c.Paused, &c.Reason, &due, &c.Errors, &last, &c.LastError, &c.Polls, &c.Events}, extra...)
	if err := row.Scan(dest...); err != nil {
		return fleet.Connection{}, err
	}
	c.Interval, c.NextDue = time.Duration(iv), time.Unix(0, due)
	if last != 0 {
		c.LastPoll = time.Unix(0, last)
	}
	return c, nil
}

func notFound(id string) error { return fmt.Errorf("%w: %q", fleet.ErrNotFound, id) }

// change runs one UPDATE or DELETE in the writer; no row is ErrNotFound.
func (s *Connections) change(ctx context.Context, id, stmt string, args func(now int64) []any) error {
	var n int64
	err := s.b.exec(ctx, func(tx *sql.Tx, now int64) error {
		r, err := tx.Exec(stmt, args(now)...)
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: connection %q: %w", id, err)
	}
	if n == 0 {
		return notFound(id)
	}
	return nil
}

// Add implements [fleet.Store].
func (s *Connections) Add(ctx context.Context, c fleet.Connection, due time.Duration) error {
	if err := c.Validate(); err != nil {
		return err
	}
	var n int64
	err := s.b.exec(ctx, func(tx *sql.Tx, now int64) error {
		r, err := tx.Exec(`INSERT INTO `+s.t+` (id, source, interval_ns, credential, cursor, next_due) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			c.ID, c.Source, int64(c.Interval), c.Credential, c.Cursor, now+int64(due))
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: add connection %q: %w", c.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %q", fleet.ErrExists, c.ID)
	}
	return nil
}

// Get implements [fleet.Store].
func (s *Connections) Get(ctx context.Context, id string) (fleet.Connection, error) {
	c, err := scanConn(s.b.db.QueryRowContext(ctx, `SELECT `+sqliteConnColumns+` FROM `+s.t+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return c, notFound(id)
	}
	if err != nil {
		return c, fmt.Errorf("sqlite: connection %q: %w", id, err)
	}
	return c, nil
}

// List implements [fleet.Store].
func (s *Connections) List(ctx context.Context, f fleet.Filter) ([]fleet.Connection, error) {
	paused := 0
	if f.Paused != nil {
		paused = 2
		if *f.Paused {
			paused = 1
		}
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.b.db.QueryContext(ctx, `SELECT `+sqliteConnColumns+` FROM `+s.t+`
WHERE (?1 = '' OR source = ?1) AND (?2 = 0 OR (?2 = 1 AND paused <> '') OR (?2 = 2 AND paused = '')) AND id > ?3
ORDER BY id LIMIT ?4`, f.Source, paused, f.After, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list connections: %w", err)
	}
	defer rows.Close()
	var out []fleet.Connection
	for rows.Next() {
		c, err := scanConn(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list connections: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list connections: %w", err)
	}
	return out, nil
}

// Update implements [fleet.Store].
func (s *Connections) Update(ctx context.Context, id string, ch fleet.Change) (fleet.Connection, error) {
	var iv any
	if ch.Interval != nil {
		if *ch.Interval < 0 {
			return fleet.Connection{}, fmt.Errorf("%w: %q: a negative interval %v", fleet.ErrInvalid, id, *ch.Interval)
		}
		iv = int64(*ch.Interval)
	}
	var cred any
	if ch.Credential != nil {
		cred = *ch.Credential
	}
	// A new credential resumes the system's pause, not a person's.
	err := s.change(ctx, id, `UPDATE `+s.t+` SET interval_ns = coalesce(?2, interval_ns), credential = coalesce(?3, credential),
	next_due = CASE WHEN ?3 IS NOT NULL AND paused = 'system' THEN ?4 ELSE next_due END,
	errors = CASE WHEN ?3 IS NOT NULL AND paused = 'system' THEN 0 ELSE errors END,
	reason = CASE WHEN ?3 IS NOT NULL AND paused = 'system' THEN '' ELSE reason END,
	paused = CASE WHEN ?3 IS NOT NULL AND paused = 'system' THEN '' ELSE paused END
WHERE id = ?1`, func(now int64) []any { return []any{id, iv, cred, now} })
	if err != nil {
		return fleet.Connection{}, err
	}
	return s.Get(ctx, id)
}

// Pause implements [fleet.Store].
func (s *Connections) Pause(ctx context.Context, id, by, reason string) error {
	if strings.TrimSpace(by) == "" {
		return fmt.Errorf("%w: a pause of %q by no one", fleet.ErrInvalid, id)
	}
	return s.change(ctx, id, `UPDATE `+s.t+` SET paused = ?2, reason = ?3, token = token + 1, holder = NULL WHERE id = ?1`,
		func(int64) []any { return []any{id, by, reason} })
}

// Resume implements [fleet.Store].
func (s *Connections) Resume(ctx context.Context, id string) error {
	return s.change(ctx, id, `UPDATE `+s.t+` SET
	next_due = CASE WHEN paused <> '' THEN ?2 ELSE next_due END, errors = CASE WHEN paused <> '' THEN 0 ELSE errors END,
	paused = '', reason = '' WHERE id = ?1`, func(now int64) []any { return []any{id, now} })
}

// Resync implements [fleet.Store].
func (s *Connections) Resync(ctx context.Context, id, cursor string) error {
	return s.change(ctx, id, `UPDATE `+s.t+` SET cursor = ?2, next_due = ?3, token = token + 1, holder = NULL WHERE id = ?1`,
		func(now int64) []any { return []any{id, cursor, now} })
}

// Remove implements [fleet.Store].
func (s *Connections) Remove(ctx context.Context, id string) error {
	return s.change(ctx, id, `DELETE FROM `+s.t+` WHERE id = ?1`, func(int64) []any { return []any{id} })
}

// Claim implements [fleet.Store]: one transaction of the writer takes
// the due rows, most overdue first, and moves each to the end of its
// lease. It says when the next is due.
func (s *Connections) Claim(ctx context.Context, holder string, n int, lease time.Duration) ([]fleet.Claim, time.Duration, error) {
	var out []fleet.Claim
	next := time.Duration(-1)
	err := s.b.exec(ctx, func(tx *sql.Tx, now int64) error {
		out, next = out[:0], -1
		// The due times they had, for the fleet's lateness count: the
		// UPDATE's RETURNING gives the new ones.
		had := map[string]int64{}
		dues, err := tx.Query(`SELECT id, next_due FROM `+s.t+` WHERE paused = '' AND next_due <= ? ORDER BY next_due LIMIT ?`, now, n)
		if err != nil {
			return err
		}
		for dues.Next() {
			var id string
			var at int64
			if err := dues.Scan(&id, &at); err != nil {
				dues.Close()
				return err
			}
			had[id] = at
		}
		if err := dues.Close(); err != nil {
			return err
		}
		rows, err := tx.Query(`UPDATE `+s.t+` SET holder = ?1, token = token + 1, next_due = ?2
WHERE id IN (SELECT id FROM `+s.t+` WHERE paused = '' AND next_due <= ?3 ORDER BY next_due LIMIT ?4)
RETURNING `+sqliteConnColumns+`, token`, holder, now+int64(lease), now, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			cl := fleet.Claim{Holder: holder}
			c, err := scanConn(rows, &cl.Token)
			if err != nil {
				return err
			}
			if at, ok := had[c.ID]; ok {
				c.NextDue = time.Unix(0, at)
			}
			cl.Connection = c
			out = append(out, cl)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		var due sql.NullInt64
		// Not our own claims: their due time is their lease's end.
		if err := tx.QueryRow(`SELECT min(next_due) FROM `+s.t+` WHERE paused = '' AND (holder IS NULL OR holder <> ?)`, holder).Scan(&due); err != nil {
			return err
		}
		if due.Valid {
			next = max(time.Duration(due.Int64-now), 0)
		}
		return nil
	})
	if err != nil {
		return nil, -1, fmt.Errorf("sqlite: claim connections: %w", err)
	}
	return out, next, nil
}

// Extend implements [fleet.Store].
func (s *Connections) Extend(ctx context.Context, holder string, claims []fleet.Claim, lease time.Duration) ([]string, error) {
	var held []string
	err := s.b.exec(ctx, func(tx *sql.Tx, now int64) error {
		held = held[:0]
		for _, c := range claims {
			r, err := tx.Exec(`UPDATE `+s.t+` SET next_due = ? WHERE id = ? AND token = ? AND holder = ? AND paused = ''`, now+int64(lease), c.ID, c.Token, holder)
			if err != nil {
				return err
			}
			if k, err := r.RowsAffected(); err != nil {
				return err
			} else if k == 1 {
				held = append(held, c.ID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: extend claims: %w", err)
	}
	return held, nil
}

// Release implements [fleet.Store].
func (s *Connections) Release(ctx context.Context, c fleet.Claim, r fleet.Result) (bool, error) {
	polled := 1
	if r.Abandoned {
		polled = 0
	}
	var n int64
	err := s.b.exec(ctx, func(tx *sql.Tx, now int64) error {
		res, err := tx.Exec(`UPDATE `+s.t+` SET cursor = ?4, next_due = ?5, events = events + ?6,
	polls = polls + ?7, last_poll = CASE WHEN ?7 = 1 THEN ?11 ELSE last_poll END,
	errors = CASE WHEN ?7 = 0 THEN errors WHEN ?8 THEN errors + 1 ELSE 0 END,
	last_error = CASE WHEN ?7 = 0 THEN last_error ELSE ?9 END,
	paused = CASE WHEN ?10 <> '' THEN 'system' ELSE paused END,
	reason = CASE WHEN ?10 <> '' THEN ?10 ELSE reason END,
	holder = NULL
WHERE id = ?1 AND token = ?2 AND holder = ?3 AND paused = ''`,
			c.ID, c.Token, c.Holder, r.Cursor, now+int64(max(r.Next, 0)), r.Events, polled, r.Failed, r.Error, r.Pause, now)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: release connection %q: %w", c.ID, err)
	}
	return n == 1, nil
}
