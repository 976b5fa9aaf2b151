package postgres

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A large backlog held by a live holder must not be read by every adoption
// and every cleanup (each replica runs both every second): they read in
// proportion to what they take. Counted in buffers by EXPLAIN (ANALYZE,
// BUFFERS) inside a rolled-back transaction, not in time.
func TestAdoptAndCleanupReadInProportion(t *testing.T) {
	pool := scanPool(t)
	ctx := context.Background()
	prefix := "scan" + newLockIDString() + "_"
	b, err := New(ctx, pool, WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close()
		dropPrefix(ctx, pool, prefix)
	})
	const held = 20000
	// 20,000 queued events held by b (alive), their claims long expired
	// (renewal writes nothing); 5 held by a holder that is gone; 5 done
	// keys whose retention ended.
	if _, err := pool.Exec(ctx, `
INSERT INTO `+prefix+`keys (hash, state, expires_at, holder, seq, key, event)
SELECT decode(md5(g::text), 'hex'), 1, now() - interval '1 hour', $1, g, 'k', 'e' FROM generate_series(1, $2) g`, b.holder, held); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
INSERT INTO `+prefix+`keys (hash, state, expires_at, holder, seq, key, event)
SELECT decode(md5('dead' || g::text), 'hex'), 1, now() - interval '1 hour', '12345', $1 + g, 'k', 'e' FROM generate_series(1, 5) g`, held); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
INSERT INTO `+prefix+`keys (hash, state, expires_at)
SELECT decode(md5('done' || g::text), 'hex'), 2, now() - interval '1 hour' FROM generate_series(1, 5) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE `+prefix+`keys`); err != nil {
		t.Fatal(err)
	}
	// read returns how many rows the statement's plan looked at and threw
	// away (its nodes' "Rows Removed by Filter", summed), and how many rows
	// it changed; both in transactions rolled back.
	read := func(name, sql string, args ...any) (removed, changed int) {
		_, removed, _ = planCost(t, pool, sql, args...) // rolled back: its row locks would make the run below skip them
		tx2, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx2.Rollback(ctx)
		tag, err := tx2.Exec(ctx, sql, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return removed, int(tag.RowsAffected())
	}
	adopt, adopted := read("adopt", b.q.adopt, "999", int64(time.Minute/time.Microsecond), 10, int32(lockClass), int64(1))
	cleanup, cleaned := read("cleanup", b.q.cleanup, 1000)
	t.Logf("with %d events held by a live holder: adopt threw away %d rows it read and took %d, cleanup threw away %d and deleted %d", held, adopt, adopted, cleanup, cleaned)
	if adopted != 5 || cleaned != 5 {
		t.Fatalf("adopt took %d (want the 5 of the dead holder), cleanup deleted %d (want the 5 done keys)", adopted, cleaned)
	}
	if adopt > 100 || cleanup > 100 {
		t.Errorf("adopt read and threw away %d rows, cleanup %d: they scan the live backlog", adopt, cleanup)
	}
}

func newLockIDString() string {
	id := newLockID()
	const digits = "0123456789abcdef"
	var b [8]byte
	for i := range b {
		b[i] = digits[(id>>(4*i))&15]
	}
	return string(b[:])
}

// planCost runs sql under EXPLAIN (ANALYZE, BUFFERS) in a transaction it
// rolls back, and returns the buffers the whole plan touched (shared hit
// and read, the top node's, which counts its children's) and the rows its
// nodes read and threw away. With INTAKE_SHOW_PLAN set it logs the plan.
func planCost(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) (buffers, removed int, ms float64) {
	t.Helper()
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	var out []byte
	if err := tx.QueryRow(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) `+sql, args...).Scan(&out); err != nil {
		t.Fatal(err)
	}
	var plan []struct {
		Plan map[string]any
		Exec float64 `json:"Execution Time"`
	}
	if err := json.Unmarshal(out, &plan); err != nil {
		t.Fatal(err)
	}
	ms = plan[0].Exec
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		for _, k := range []string{"Rows Removed by Filter", "Rows Removed by Index Recheck", "Rows Removed by Join Filter"} {
			if v, ok := n[k].(float64); ok {
				removed += int(v)
			}
		}
		if subs, ok := n["Plans"].([]any); ok {
			for _, sub := range subs {
				if m, ok := sub.(map[string]any); ok {
					walk(m)
				}
			}
		}
	}
	walk(plan[0].Plan)
	for _, k := range []string{"Shared Hit Blocks", "Shared Read Blocks"} {
		if v, ok := plan[0].Plan[k].(float64); ok {
			buffers += int(v)
		}
	}
	if os.Getenv("INTAKE_SHOW_PLAN") != "" {
		_ = tx.Rollback(ctx)
		tx2, _ := pool.Begin(ctx)
		defer tx2.Rollback(ctx) //nolint:errcheck
		rows, err := tx2.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS) `+sql, args...)
		if err == nil {
			for rows.Next() {
				var line string
				_ = rows.Scan(&line)
				t.Log(line)
			}
			rows.Close()
		}
	}
	return buffers, removed, ms
}

// Issue #22: after a restart the queue holds a backlog given back (holder
// NULL) or left by a holder that is gone; adoption takes a batch of it
// and must cost in proportion to the batch, not to the backlog. Counted in
// buffers and rows thrown away (EXPLAIN ANALYZE), at 10,000 and 100,000
// queued events: the larger backlog may cost at most 1.5× the smaller.
// INTAKE_ADOPT_BACKLOG=1000000 compares 10,000 with that size instead.
func TestAdoptCostsWhatItTakes(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 220,000 rows")
	}
	pool := scanPool(t)
	ctx := context.Background()
	const batch = 1000
	cost := func(n int, holder any) (buffers, removed, took int, ms float64) {
		prefix := "adopt" + newLockIDString() + "_"
		b, err := New(ctx, pool, WithPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			b.Close()
			dropPrefix(ctx, pool, prefix)
		}()
		// n queued events, 1 KiB each; and as many done keys, as a busy
		// receiver's table holds.
		if _, err := pool.Exec(ctx, `
INSERT INTO `+prefix+`keys (hash, state, expires_at, holder, seq, key, event, source, type)
SELECT decode(md5(g::text), 'hex'), 1, now() - interval '1 hour', $1, g, convert_to('k' || g, 'UTF8'), convert_to(repeat('x', 1024), 'UTF8'), 'api', 't'
FROM generate_series(1, $2) g`, holder, n); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `
INSERT INTO `+prefix+`keys (hash, state, expires_at)
SELECT decode(md5('done' || g::text), 'hex'), 2, now() + interval '1 day' FROM generate_series(1, $1) g`, n); err != nil {
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE `+prefix+`keys`); err != nil {
			t.Fatal(err)
		}
		// The time: the median of five runs, after a checkpoint so that
		// the load's writes are not what is measured.
		if _, err := pool.Exec(ctx, `CHECKPOINT`); err != nil {
			t.Logf("checkpoint: %v", err)
		}
		var times []float64
		for range 5 {
			var t1 float64
			buffers, removed, t1 = planCost(t, pool, b.q.adopt, b.holder, int64(time.Minute/time.Microsecond), batch, int32(lockClass), int64(1))
			times = append(times, t1)
		}
		slices.Sort(times)
		ms = times[len(times)/2]
		tag, err := pool.Exec(ctx, b.q.adopt, b.holder, int64(time.Minute/time.Microsecond), batch, int32(lockClass), int64(1))
		if err != nil {
			t.Fatal(err)
		}
		return buffers, removed, int(tag.RowsAffected()), ms
	}
	for _, tt := range []struct {
		name   string
		holder any
	}{
		{"given back", nil},
		{"holder gone", "12345"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			large := 100_000
			if n, err := strconv.Atoi(os.Getenv("INTAKE_ADOPT_BACKLOG")); err == nil && n > 0 {
				large = n
			}
			b10, r10, took10, ms10 := cost(10_000, tt.holder)
			b100, r100, took100, ms100 := cost(large, tt.holder)
			t.Logf("adopt %d of 10,000: %d buffers, %d rows thrown away, %.1f ms; %d of %d: %d buffers, %d rows thrown away, %.1f ms",
				took10, b10, r10, ms10, took100, large, b100, r100, ms100)
			if took10 != batch || took100 != batch {
				t.Fatalf("took %d and %d, want %d each", took10, took100, batch)
			}
			if float64(b100) > 1.5*float64(b10) || r100 > 2*batch {
				t.Errorf("adoption costs in proportion to the backlog: %d buffers at %d against %d at 10,000, %d rows thrown away", b100, large, b10, r100)
			}
		})
	}
}

// scanPool connects to the test server, or skips (fails under CI=true).
func scanPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	dsn := os.Getenv("INTAKE_POSTGRES_DSN")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		msg := "PostgreSQL not reachable at " + dsn + ": " + err.Error() +
			"; start one with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` or set INTAKE_POSTGRES_DSN"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(pool.Close)
	return pool
}

// dropPrefix drops every table and sequence whose name starts with
// prefix, whatever tables the backend has made by now.
func dropPrefix(ctx context.Context, pool *pgxpool.Pool, prefix string) {
	rows, err := pool.Query(ctx, `SELECT 'TABLE', tablename FROM pg_tables WHERE schemaname = current_schema() AND starts_with(tablename, $1)
UNION ALL SELECT 'SEQUENCE', sequencename FROM pg_sequences WHERE schemaname = current_schema() AND starts_with(sequencename, $1)`, prefix)
	if err != nil {
		return
	}
	var drops []string
	for rows.Next() {
		var kind, name string
		if rows.Scan(&kind, &name) == nil {
			drops = append(drops, "DROP "+kind+" IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE")
		}
	}
	rows.Close()
	for _, d := range drops {
		_, _ = pool.Exec(ctx, d)
	}
}
