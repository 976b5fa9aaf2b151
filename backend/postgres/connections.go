package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/intakehq/intake/fleet"
)

// Connections returns the backend's [fleet.Store]: a poller fleet's
// connections in the table {prefix}connections, shared by every replica
// on the database. Due connections are claimed in batches with FOR
// UPDATE SKIP LOCKED through an index on their due time (one statement
// per batch), a poll's result is one fenced UPDATE, and an idle
// connection costs no statement until it is due.
//
//	f := fleet.New("accounts", pg.Connections())
func (b *Backend) Connections() *Connections { return &Connections{b: b, q: newConnQueries(b.prefix)} }

// Connections is the [fleet.Store] of [Backend.Connections].
type Connections struct {
	b *Backend
	q connQueries
}

type connQueries struct {
	add, get, list, update, pause, resume, resync, remove, claim, extend, release string
}

const connColumns = `id, source, interval_us, credential, cursor, paused, reason, next_due, errors, last_poll, last_error, polls, events`

func newConnQueries(p string) connQueries {
	q := connQueries{
		add: `INSERT INTO {p}connections (id, source, interval_us, credential, cursor, next_due)
VALUES ($1, $2, $3, $4, $5, now() + $6 * interval '1 microsecond') ON CONFLICT (id) DO NOTHING`,
		get: `SELECT ` + connColumns + ` FROM {p}connections WHERE id = $1`,
		list: `SELECT ` + connColumns + ` FROM {p}connections
WHERE ($1 = '' OR source = $1) AND ($2 = 0 OR ($2 = 1 AND paused <> '') OR ($2 = 2 AND paused = '')) AND id > $3
ORDER BY id LIMIT $4`,
		// A new credential resumes the system's pause, not a person's.
		update: `UPDATE {p}connections SET interval_us = coalesce($2, interval_us), credential = coalesce($3, credential),
	next_due = CASE WHEN $3::text IS NOT NULL AND paused = 'system' THEN now() ELSE next_due END,
	errors = CASE WHEN $3::text IS NOT NULL AND paused = 'system' THEN 0 ELSE errors END,
	reason = CASE WHEN $3::text IS NOT NULL AND paused = 'system' THEN '' ELSE reason END,
	paused = CASE WHEN $3::text IS NOT NULL AND paused = 'system' THEN '' ELSE paused END
WHERE id = $1 RETURNING ` + connColumns,
		pause:  `UPDATE {p}connections SET paused = $2, reason = $3, token = token + 1, holder = NULL WHERE id = $1`,
		resume: `UPDATE {p}connections SET paused = '', reason = '', errors = 0, next_due = now() WHERE id = $1 AND paused <> ''`,
		resync: `UPDATE {p}connections SET cursor = $2, next_due = now(), token = token + 1, holder = NULL WHERE id = $1`,
		remove: `DELETE FROM {p}connections WHERE id = $1`,
		// One statement per batch: the due rows, most overdue first,
		// skipping those another replica is claiming; each moves its due
		// time to the end of the lease. RETURNING gives the due time it had.
		claim: `WITH due AS (
	SELECT id, next_due FROM {p}connections WHERE paused = '' AND next_due <= now()
	ORDER BY next_due LIMIT $2 FOR UPDATE SKIP LOCKED)
UPDATE {p}connections c SET holder = $1, token = c.token + 1, next_due = now() + $3 * interval '1 microsecond'
FROM due WHERE c.id = due.id
RETURNING c.id, c.source, c.interval_us, c.credential, c.cursor, c.paused, c.reason, due.next_due, c.errors, c.last_poll, c.last_error, c.polls, c.events, c.token`,
		extend: `UPDATE {p}connections c SET next_due = now() + $4 * interval '1 microsecond'
FROM unnest($2::text[], $3::bigint[]) AS h(id, token)
WHERE c.id = h.id AND c.token = h.token AND c.holder = $1 AND c.paused = ''
RETURNING c.id`,
		release: `UPDATE {p}connections SET cursor = $4, next_due = now() + $5 * interval '1 microsecond', events = events + $6,
	polls = polls + $7, last_poll = CASE WHEN $7 = 1 THEN now() ELSE last_poll END,
	errors = CASE WHEN $7 = 0 THEN errors WHEN $8 THEN errors + 1 ELSE 0 END,
	last_error = CASE WHEN $7 = 0 THEN last_error ELSE $9 END,
	paused = CASE WHEN $10 <> '' THEN 'system' ELSE paused END,
	reason = CASE WHEN $10 <> '' THEN $10 ELSE reason END,
	holder = NULL
WHERE id = $1 AND token = $2 AND holder = $3 AND paused = ''`,
	}
	for _, s := range []*string{&q.add, &q.get, &q.list, &q.update, &q.pause, &q.resume, &q.resync, &q.remove, &q.claim, &q.extend, &q.release} {
		*s = strings.ReplaceAll(*s, "{p}", p)
	}
	return q
}

func scanConn(row pgx.Row, extra ...any) (fleet.Connection, error) {
	var c fleet.Connection
	var iv int64
	var lastPoll *time.Time
	dest := append([]any{&c.ID, &c.Source, &iv, &c.Credential, &c.Cursor, &c.Paused, &c.Reason, &c.NextDue, &c.Errors, &lastPoll, &c.LastError, &c.Polls, &c.Events}, extra...)
	if err := row.Scan(dest...); err != nil {
		return fleet.Connection{}, err
	}
	c.Interval = time.Duration(iv) * time.Microsecond
	if lastPoll != nil {
		c.LastPoll = *lastPoll
	}
	return c, nil
}

func notFound(id string) error { return fmt.Errorf("%w: %q", fleet.ErrNotFound, id) }

// one runs a statement that must change one row, or the connection does
// not exist.
func (s *Connections) one(ctx context.Context, sql, id string, args ...any) error {
	tag, err := s.b.pool.Exec(ctx, sql, append([]any{id}, args...)...)
	if err != nil {
		return fmt.Errorf("postgres: connection %q: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound(id)
	}
	return nil
}

// Add implements [fleet.Store].
func (s *Connections) Add(ctx context.Context, c fleet.Connection, due time.Duration) error {
	if err := c.Validate(); err != nil {
		return err
	}
	tag, err := s.b.pool.Exec(ctx, s.q.add, c.ID, c.Source, c.Interval.Microseconds(), c.Credential, c.Cursor, due.Microseconds())
	if err != nil {
		return fmt.Errorf("postgres: add connection %q: %w", c.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%w: %q", fleet.ErrExists, c.ID)
	}
	return nil
}

// Get implements [fleet.Store].
func (s *Connections) Get(ctx context.Context, id string) (fleet.Connection, error) {
	c, err := scanConn(s.b.pool.QueryRow(ctx, s.q.get, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, notFound(id)
	}
	if err != nil {
		return c, fmt.Errorf("postgres: connection %q: %w", id, err)
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
	rows, err := s.b.pool.Query(ctx, s.q.list, f.Source, paused, f.After, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list connections: %w", err)
	}
	defer rows.Close()
	var out []fleet.Connection
	for rows.Next() {
		c, err := scanConn(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list connections: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list connections: %w", err)
	}
	return out, nil
}

// Update implements [fleet.Store].
func (s *Connections) Update(ctx context.Context, id string, ch fleet.Change) (fleet.Connection, error) {
	var iv *int64
	if ch.Interval != nil {
		if *ch.Interval < 0 {
			return fleet.Connection{}, fmt.Errorf("%w: %q: a negative interval %v", fleet.ErrInvalid, id, *ch.Interval)
		}
		us := ch.Interval.Microseconds()
		iv = &us
	}
	c, err := scanConn(s.b.pool.QueryRow(ctx, s.q.update, id, iv, ch.Credential))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, notFound(id)
	}
	if err != nil {
		return c, fmt.Errorf("postgres: update connection %q: %w", id, err)
	}
	return c, nil
}

// Pause implements [fleet.Store].
func (s *Connections) Pause(ctx context.Context, id, by, reason string) error {
	if strings.TrimSpace(by) == "" {
		return fmt.Errorf("%w: a pause of %q by no one", fleet.ErrInvalid, id)
	}
	return s.one(ctx, s.q.pause, id, by, reason)
}

// Resume implements [fleet.Store].
func (s *Connections) Resume(ctx context.Context, id string) error {
	err := s.one(ctx, s.q.resume, id)
	if errors.Is(err, fleet.ErrNotFound) {
		_, err = s.Get(ctx, id) // active already, or gone
	}
	return err
}

// Resync implements [fleet.Store].
func (s *Connections) Resync(ctx context.Context, id, cursor string) error {
	return s.one(ctx, s.q.resync, id, cursor)
}

// Remove implements [fleet.Store].
func (s *Connections) Remove(ctx context.Context, id string) error { return s.one(ctx, s.q.remove, id) }

// Claim implements [fleet.Store]. It says how long until the next due
// connection only when the batch is full (0: more are due); otherwise
// -1, since finding out would cost a statement on every scan.
func (s *Connections) Claim(ctx context.Context, holder string, n int, lease time.Duration) ([]fleet.Claim, time.Duration, error) {
	if n <= 0 {
		return nil, -1, nil
	}
	rows, err := s.b.pool.Query(ctx, s.q.claim, holder, n, lease.Microseconds())
	if err != nil {
		return nil, -1, fmt.Errorf("postgres: claim connections: %w", err)
	}
	defer rows.Close()
	var out []fleet.Claim
	for rows.Next() {
		cl := fleet.Claim{Holder: holder}
		c, err := scanConn(rows, &cl.Token)
		if err != nil {
			return nil, -1, fmt.Errorf("postgres: claim connections: %w", err)
		}
		cl.Connection = c
		out = append(out, cl)
	}
	if err := rows.Err(); err != nil {
		return nil, -1, fmt.Errorf("postgres: claim connections: %w", err)
	}
	next := time.Duration(-1)
	if len(out) == n {
		next = 0
	}
	return out, next, nil
}

// Extend implements [fleet.Store].
func (s *Connections) Extend(ctx context.Context, holder string, claims []fleet.Claim, lease time.Duration) ([]string, error) {
	ids := make([]string, len(claims))
	tokens := make([]int64, len(claims))
	for i, c := range claims {
		ids[i], tokens[i] = c.ID, c.Token
	}
	rows, err := s.b.pool.Query(ctx, s.q.extend, holder, ids, tokens, lease.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("postgres: extend claims: %w", err)
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: extend claims: %w", err)
	}
	return held, nil
}

// Release implements [fleet.Store].
func (s *Connections) Release(ctx context.Context, c fleet.Claim, r fleet.Result) (bool, error) {
	polled := 1
	if r.Abandoned {
		polled = 0
	}
	tag, err := s.b.pool.Exec(ctx, s.q.release, c.ID, c.Token, c.Holder, r.Cursor, max(r.Next, 0).Microseconds(),
		r.Events, polled, r.Failed, r.Error, r.Pause)
	if err != nil {
		return false, fmt.Errorf("postgres: release connection %q: %w", c.ID, err)
	}
	return tag.RowsAffected() == 1, nil
}
