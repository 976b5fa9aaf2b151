package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/intakehq/intake/dedupe"
)

// Heads implements [dedupe.Orderer]: the first n pending events of each
// order key, in stored order, in one query (an index scan per key).
// Events of one order key draw their place in the order they commit (an
// enqueue locks its order keys first), so no replica sees a key's later
// event before an earlier one.
func (b *Backend) Heads(ctx context.Context, orderKeys []string, n int) (map[string][]dedupe.Head, error) {
	ks := make([][]byte, len(orderKeys))
	for i, k := range orderKeys {
		ks[i] = []byte(k)
	}
	rows, err := b.pool.Query(ctx, b.q.heads, ks, n)
	if err != nil {
		return nil, fmt.Errorf("postgres: heads: %w", err)
	}
	out := make(map[string][]dedupe.Head, len(orderKeys))
	var k, key, source, typ []byte
	_, err = pgx.ForEachRow(rows, []any{&k, &key, &source, &typ}, func() error {
		out[string(k)] = append(out[string(k)], dedupe.Head{Key: string(key), Source: string(source), Type: string(typ)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: heads: %w", err)
	}
	return out, nil
}

// LastVersions implements [dedupe.Versions].
func (b *Backend) LastVersions(ctx context.Context, sub string, orderKeys []string) (map[string]int64, error) {
	ks := make([][]byte, len(orderKeys))
	for i, k := range orderKeys {
		ks[i] = []byte(k)
	}
	rows, err := b.pool.Query(ctx, b.q.lastVersions, sub, ks)
	if err != nil {
		return nil, fmt.Errorf("postgres: versions: %w", err)
	}
	out := make(map[string]int64, len(orderKeys))
	var k []byte
	var v int64
	_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error {
		out[string(k)] = v
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: versions: %w", err)
	}
	return out, nil
}

// SaveVersion implements [dedupe.Versions]. Expired versions are deleted
// by [Backend.Cleanup].
func (b *Backend) SaveVersion(ctx context.Context, sub, orderKey string, v int64, retain time.Duration) error {
	if err := validDuration(retain); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, b.q.saveVersion, sub, []byte(orderKey), v, micros(retain)); err != nil {
		return fmt.Errorf("postgres: save version: %w", err)
	}
	return nil
}

var (
	_ dedupe.Orderer  = (*Backend)(nil)
	_ dedupe.Versions = (*Backend)(nil)
)
