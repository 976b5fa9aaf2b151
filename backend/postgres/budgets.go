package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/intakehq/intake/budget"
)

// Budgets returns the backend's [budget.Store]: each credential's budget
// in the table {prefix}budgets, shared by every replica on the database.
// An update is one transaction that locks the key's row (an upsert that
// returns the state), writes the new state and commits.
//
//	b := budget.New(pg.Budgets(), budget.Policy{Rate: 20, Per: time.Second})
//	client := &http.Client{Transport: b.Transport(nil, budget.ByHeader("Authorization"))}
func (b *Backend) Budgets() *Budgets { return &Budgets{b: b, t: b.prefix + "budgets"} }

// Budgets is the [budget.Store] of [Backend.Budgets].
type Budgets struct {
	b *Backend
	t string
}

// Update implements [budget.Store].
func (s *Budgets) Update(ctx context.Context, key string, fn func(st *budget.State)) error {
	err := pgx.BeginFunc(ctx, s.b.pool, func(tx pgx.Tx) error {
		var raw []byte
		// The upsert locks the row, new or not, until the commit.
		if err := tx.QueryRow(ctx, `INSERT INTO `+s.t+` (key, state) VALUES ($1, '{}')
ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING state`, key).Scan(&raw); err != nil {
			return err
		}
		var st budget.State
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("state of %q: %w", key, err)
		}
		fn(&st)
		out, err := json.Marshal(st)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE `+s.t+` SET state = $2 WHERE key = $1`, key, out)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: budget %q: %w", key, err)
	}
	return nil
}
