package postgres

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// A large backlog held by a live holder must not be read by every adoption
// and every cleanup (each replica runs both every second): they read in
// proportion to what they take. Counted in buffers by EXPLAIN (ANALYZE,
// BUFFERS) inside a rolled-back transaction, not in time.
func TestAdoptAndCleanupReadInProportion(t *testing.T) {
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
	defer pool.Close()
	prefix := "scan" + newLockIDString() + "_"
	b, err := New(ctx, pool, WithPrefix(prefix))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close()
		for _, tb := range []string{"keys", "checkpoints", "leases", "feed"} {
			_, _ = pool.Exec(ctx, `DROP TABLE IF EXISTS `+prefix+tb)
		}
		_, _ = pool.Exec(ctx, `DROP SEQUENCE IF EXISTS `+prefix+`keys_seq`)
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
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		var out []byte
		if err := tx.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+sql, args...).Scan(&out); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []struct{ Plan map[string]any }
		if err := json.Unmarshal(out, &plan); err != nil {
			t.Fatal(err)
		}
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
		if os.Getenv("INTAKE_SHOW_PLAN") != "" {
			var text string
			_ = tx.QueryRow(ctx, `EXPLAIN (ANALYZE) `+sql, args...).Scan(&text)
			rows, _ := tx.Query(ctx, `EXPLAIN (ANALYZE) `+sql, args...)
			for rows.Next() {
				_ = rows.Scan(&text)
				t.Log(text)
			}
			rows.Close()
		}
		_ = tx.Rollback(ctx) // its row locks would make the run below skip them
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
	adopt, adopted := read("adopt", b.q.adopt, "999", int64(time.Minute/time.Microsecond), 10, int32(lockClass))
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
