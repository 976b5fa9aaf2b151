package redis

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/intakehq/intake/budget"
)

// Budgets returns the backend's [budget.Store]: each credential's budget
// a key {prefix}budget:{key} holding its state, JSON, shared by every
// replica on the server. An update is optimistic (WATCH, then MULTI/EXEC
// of the new state) and tried again when another replica changed the key
// meanwhile (until ctx ends); an untouched key expires after two days.
func (s *Backend) Budgets() *Budgets { return &Budgets{b: s} }

// Budgets is the [budget.Store] of [Backend.Budgets].
type Budgets struct{ b *Backend }

// budgetTTL is how long an untouched budget's state is kept.
const budgetTTL = 48 * time.Hour

// Update implements [budget.Store].
func (s *Budgets) Update(ctx context.Context, key string, fn func(st *budget.State)) error {
	k := s.b.prefix + "budget:" + key
	for attempt := 0; ; attempt++ {
		err := s.b.c.Watch(ctx, func(tx *goredis.Tx) error {
			var st budget.State
			raw, err := tx.Get(ctx, k).Bytes()
			switch {
			case errors.Is(err, goredis.Nil):
			case err != nil:
				return err
			default:
				if json.Unmarshal(raw, &st) != nil {
					st = budget.State{}
				}
			}
			fn(&st)
			out, err := json.Marshal(st)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p goredis.Pipeliner) error {
				p.Set(ctx, k, out, budgetTTL)
				return nil
			})
			return err
		}, k)
		if errors.Is(err, goredis.TxFailedErr) && ctx.Err() == nil {
			// Another replica wrote it meanwhile: read it again, after a
			// pause that grows with the contention (at most 20 ms).
			time.Sleep(time.Duration(rand.Int64N(int64(min(attempt+1, 20)) * int64(time.Millisecond))))
			continue
		}
		if err != nil {
			return fmt.Errorf("redis: budget %q: %w", key, err)
		}
		return nil
	}
}
