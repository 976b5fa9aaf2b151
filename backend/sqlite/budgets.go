package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/intakehq/intake/budget"
)

// Budgets returns the backend's [budget.Store]: each credential's budget
// in the table {prefix}budgets of the backend's file, updated in the
// writer's transaction (processes sharing the file take turns).
func (b *Backend) Budgets() *Budgets { return &Budgets{b: b, t: b.t.budgets} }

// Budgets is the [budget.Store] of [Backend.Budgets].
type Budgets struct {
	b *Backend
	t string
}

// Update implements [budget.Store].
func (s *Budgets) Update(ctx context.Context, key string, fn func(st *budget.State)) error {
	err := s.b.exec(ctx, func(tx *sql.Tx, _ int64) error {
		var raw string
		var st budget.State
		err := tx.QueryRow(`SELECT state FROM `+s.t+` WHERE key = ?`, key).Scan(&raw)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			if json.Unmarshal([]byte(raw), &st) != nil {
				st = budget.State{} // unreadable: start over rather than fail every batch of the writer
			}
		}
		fn(&st)
		out, err := json.Marshal(st)
		if err != nil {
			return err
		}
		_, err = tx.Exec(`INSERT INTO `+s.t+` (key, state) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET state = excluded.state`, key, string(out))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: budget %q: %w", key, err)
	}
	return nil
}
