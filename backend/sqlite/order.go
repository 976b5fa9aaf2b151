package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/intakehq/intake/dedupe"
)

// Heads implements [dedupe.Orderer]: the first n pending events of each
// order key, in stored order (the writer draws each event's seq as it
// commits, one transaction at a time).
func (b *Backend) Heads(ctx context.Context, orderKeys []string, n int) (map[string][]dedupe.Head, error) {
	out := make(map[string][]dedupe.Head, len(orderKeys))
	stmt, err := b.db.PrepareContext(ctx, `SELECT key, source, type FROM `+b.t.keys+`
		WHERE ordkey = ? AND state = 1 AND seq IS NOT NULL ORDER BY seq LIMIT ?`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: heads: %w", err)
	}
	defer stmt.Close()
	for _, k := range orderKeys {
		rows, err := stmt.QueryContext(ctx, []byte(k), n)
		if err != nil {
			return nil, fmt.Errorf("sqlite: heads: %w", err)
		}
		for rows.Next() {
			var key, source, typ []byte
			if err := rows.Scan(&key, &source, &typ); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: heads: %w", err)
			}
			out[k] = append(out[k], dedupe.Head{Key: string(key), Source: string(source), Type: string(typ)})
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("sqlite: heads: %w", err)
		}
	}
	return out, nil
}

// LastVersions implements [dedupe.Versions].
func (b *Backend) LastVersions(ctx context.Context, sub string, orderKeys []string) (map[string]int64, error) {
	out := make(map[string]int64, len(orderKeys))
	now := b.now().UnixNano()
	for _, k := range orderKeys {
		var v int64
		err := b.db.QueryRowContext(ctx, `SELECT version FROM `+b.t.versions+` WHERE sub = ? AND ordkey = ? AND expires_at > ?`,
			sub, []byte(k), now).Scan(&v)
		switch {
		case err == sql.ErrNoRows:
		case err != nil:
			return nil, fmt.Errorf("sqlite: versions: %w", err)
		default:
			out[k] = v
		}
	}
	return out, nil
}

// SaveVersion implements [dedupe.Versions], in the writer's next group
// commit. Expired versions are deleted with expired keys.
func (b *Backend) SaveVersion(ctx context.Context, sub, orderKey string, v int64, retain time.Duration) error {
	if err := validDuration(retain); err != nil {
		return err
	}
	o := &op{fn: func(tx *sql.Tx, now int64) error {
		_, err := tx.Exec(saveVersionSQL(b.t.versions), sub, []byte(orderKey), v, now+int64(retain), now)
		return err
	}}
	if err := b.submit(ctx, o); err != nil {
		return fmt.Errorf("sqlite: save version: %w", err)
	}
	return nil
}

// saveVersionSQL records version ?3 for (?1, ?2) until ?4 unless a greater
// one is recorded and not expired at ?5.
func saveVersionSQL(table string) string {
	return `INSERT INTO ` + table + ` AS x (sub, ordkey, version, expires_at) VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (sub, ordkey) DO UPDATE SET
			version = CASE WHEN x.expires_at <= ?5 THEN excluded.version ELSE max(x.version, excluded.version) END,
			expires_at = excluded.expires_at`
}

var (
	_ dedupe.Orderer  = (*Backend)(nil)
	_ dedupe.Versions = (*Backend)(nil)
)
