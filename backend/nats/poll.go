package nats

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/intakehq/intake/poller"
)

// Pollers is a poller's [poller.Checkpoint] and [poller.Lease] in a
// JetStream key-value bucket, intake_N_poll, shared by the replicas of
// queue N, so that one replica polls each source and any resumes where
// it stopped. Keys are the pollers' names, hashed (a name may hold any
// bytes): "c." for a cursor, "l." for a lease.
type Pollers struct {
	q  *Queue
	kv jetstream.KeyValue
}

// Pollers makes (or finds) the queue's poller bucket, with the queue's
// replicas.
func (q *Queue) Pollers(ctx context.Context) (*Pollers, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	cfg := jetstream.KeyValueConfig{Bucket: "intake_" + q.name + "_poll", Replicas: q.replicas, Storage: jetstream.FileStorage}
	kv, err := q.js.CreateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = q.js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: poller bucket: %w", err)
	}
	return &Pollers{q: q, kv: kv}, nil
}

func (p *Pollers) key(kind, name string) string { return kind + "." + hashKey(name) }

// Checkpoint returns the poller's checkpoint.
func (p *Pollers) Checkpoint() poller.Checkpoint { return checkpoint{p} }

type checkpoint struct{ p *Pollers }

// Load implements [poller.Checkpoint].
func (c checkpoint) Load(ctx context.Context, name string) (string, error) {
	if err := c.p.q.connected(); err != nil {
		return "", fmt.Errorf("nats: load checkpoint: %w", err)
	}
	ctx, cancel := c.p.q.ctx(ctx)
	defer cancel()
	e, err := c.p.kv.Get(ctx, c.p.key("c", name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("nats: load checkpoint: %w", err)
	}
	return string(e.Value()), nil
}

// Save implements [poller.Checkpoint].
func (c checkpoint) Save(ctx context.Context, name, cursor string) error {
	if err := c.p.q.connected(); err != nil {
		return fmt.Errorf("nats: save checkpoint: %w", err)
	}
	ctx, cancel := c.p.q.ctx(ctx)
	defer cancel()
	if _, err := c.p.kv.Put(ctx, c.p.key("c", name), []byte(cursor)); err != nil {
		return fmt.Errorf("nats: save checkpoint: %w", err)
	}
	return nil
}

// Lease returns the poller's lease: held by this queue's holder. Its end
// is written by the holder's clock and read by the others': replicas'
// clocks must agree within a fraction of the lease.
func (p *Pollers) Lease() poller.Lease { return lease{p} }

type lease struct{ p *Pollers }

// value is "holder end" (end in Unix ms).
func (l lease) value(ttl time.Duration) []byte {
	return []byte(l.p.q.holder + " " + strconv.FormatInt(time.Now().Add(ttl).UnixMilli(), 10))
}

// read returns the lease's holder and end, and its revision (0: none).
func (l lease) read(ctx context.Context, name string) (holder string, end int64, rev uint64, err error) {
	if err := l.p.q.connected(); err != nil {
		return "", 0, 0, err
	}
	e, err := l.p.kv.Get(ctx, l.p.key("l", name))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return "", 0, 0, nil
	}
	if err != nil {
		return "", 0, 0, err
	}
	h, e2, _ := strings.Cut(string(e.Value()), " ")
	end, _ = strconv.ParseInt(e2, 10, 64)
	return h, end, e.Revision(), nil
}

// write sets the lease if its revision is still rev (0: none, or deleted).
func (l lease) write(ctx context.Context, name string, rev uint64, ttl time.Duration) (bool, error) {
	var err error
	if rev == 0 {
		_, err = l.p.kv.Create(ctx, l.p.key("l", name), l.value(ttl))
	} else {
		_, err = l.p.kv.Update(ctx, l.p.key("l", name), l.value(ttl), rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || isConflict(err) {
		return false, nil
	}
	return err == nil, err
}

// Acquire implements [poller.Lease]: the lease is taken if it is free,
// ended, or this holder's.
func (l lease) Acquire(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	ctx, cancel := l.p.q.ctx(ctx)
	defer cancel()
	h, end, rev, err := l.read(ctx, name)
	if err != nil {
		return false, fmt.Errorf("nats: lease: %w", err)
	}
	if rev != 0 && h != "" && h != l.p.q.holder && time.Now().UnixMilli() < end {
		return false, nil
	}
	ok, err := l.write(ctx, name, rev, ttl)
	if err != nil {
		return false, fmt.Errorf("nats: lease: %w", err)
	}
	return ok, nil
}

// Renew implements [poller.Lease]: only this holder's lease, not ended.
func (l lease) Renew(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	ctx, cancel := l.p.q.ctx(ctx)
	defer cancel()
	h, end, rev, err := l.read(ctx, name)
	if err != nil {
		return false, fmt.Errorf("nats: lease: %w", err)
	}
	if rev == 0 || h != l.p.q.holder || time.Now().UnixMilli() >= end {
		return false, nil
	}
	ok, err := l.write(ctx, name, rev, ttl)
	if err != nil {
		return false, fmt.Errorf("nats: lease: %w", err)
	}
	return ok, nil
}

// Release implements [poller.Lease]: only this holder's lease is freed.
func (l lease) Release(ctx context.Context, name string) error {
	ctx, cancel := l.p.q.ctx(ctx)
	defer cancel()
	h, _, rev, err := l.read(ctx, name)
	if err != nil {
		return fmt.Errorf("nats: lease: %w", err)
	}
	if rev == 0 || h != l.p.q.holder {
		return nil
	}
	if _, err := l.p.kv.Update(ctx, l.p.key("l", name), []byte(" 0"), rev); err != nil && !isConflict(err) {
		return fmt.Errorf("nats: lease: %w", err)
	}
	return nil
}
