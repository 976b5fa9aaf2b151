// Package redis keeps intake's idempotency keys, poller checkpoints and
// leader leases in Redis, so that several replicas share them: each event
// is processed once across replicas, and one replica polls each source.
//
// A [Backend] is a [dedupe.Store]; [Backend.Checkpoint] and [Backend.Lease] give
// the poller's. Redis holds keys, not events: pair it with the stream's
// in-memory queue (the default), and size the claim lease
// ([intake.WithClaimLease]) for the time an event waits and is handled,
// since a replica that crashes leaves its claims until they expire. For a
// durable queue, events stored with their keys, use [NewQueue].
//
//	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	store := intakeredis.New(client)
//	stream := intake.New(intake.WithStore(store))
//
// A claim is one SET NX PX (a GET follows only when it loses, to tell a
// pending key from a done one); release is a script that deletes only a
// pending key. A lease is SET NX
// PX with the holder's token, renewed and released only by that token.
// Keys are prefixed (default "intake:") so that several streams can share
// a server; expiry is Redis's own, so there is nothing to clean up.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/intakehq/intake/dedupe"
)

// Backend keeps intake's keys in Redis. Create it with [New] or [Open].
// It is safe for concurrent use. Each Backend is one holder of leases:
// give every replica its own.
type Backend struct {
	c      goredis.UniversalClient
	owned  bool // Open made the client; Close closes it
	prefix string
	holder string
}

// Option configures a [Backend].
type Option func(*Backend)

// WithPrefix sets the prefix of every key. Defaults to "intake:".
func WithPrefix(p string) Option { return func(s *Backend) { s.prefix = p } }

// New returns a store on c, a client the caller owns and closes.
func New(c goredis.UniversalClient, opts ...Option) *Backend {
	var r [8]byte
	_, _ = rand.Read(r[:])
	s := &Backend{c: c, prefix: "intake:", holder: hex.EncodeToString(r[:])}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Open connects to the server at url (redis://[user:password@]host:port/db)
// and returns a store that owns the client: Close closes it.
func Open(url string, opts ...Option) (*Backend, error) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	s := New(goredis.NewClient(o), opts...)
	s.owned = true
	return s, nil
}

// Close closes the client if [Open] made it; otherwise it does nothing.
func (s *Backend) Close() error {
	if s.owned {
		return s.c.Close()
	}
	return nil
}

const (
	pendingValue = "p"
	doneValue    = "d"
)

// releaseScript deletes the key only while it is pending.
var releaseScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

func validDuration(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("redis: duration %v: %w", d, dedupe.ErrInvalidDuration)
	}
	return nil
}

func ms(d time.Duration) int64 { return max(d.Milliseconds(), 1) }

// Claim implements [dedupe.Store]. The claim itself is one SET NX PX;
// only when it loses does a GET tell a pending key from a done one.
func (s *Backend) Claim(ctx context.Context, key string, lease time.Duration) (dedupe.State, error) {
	if err := validDuration(lease); err != nil {
		return 0, err
	}
	k := s.prefix + "k:" + key
	for range 3 {
		ok, err := s.c.SetNX(ctx, k, pendingValue, time.Duration(ms(lease))*time.Millisecond).Result()
		if err != nil {
			return 0, fmt.Errorf("redis: claim: %w", err)
		}
		if ok {
			return dedupe.Claimed, nil
		}
		v, err := s.c.Get(ctx, k).Result()
		switch {
		case errors.Is(err, goredis.Nil):
			continue // expired or released meanwhile: claim again
		case err != nil:
			return 0, fmt.Errorf("redis: claim: %w", err)
		case v == doneValue:
			return dedupe.Done, nil
		default:
			return dedupe.Pending, nil
		}
	}
	return 0, errors.New("redis: claim: key keeps changing; try again")
}

// Commit implements [dedupe.Store].
func (s *Backend) Commit(ctx context.Context, key string, retain time.Duration) error {
	if err := validDuration(retain); err != nil {
		return err
	}
	if err := s.c.Set(ctx, s.prefix+"k:"+key, doneValue, time.Duration(ms(retain))*time.Millisecond).Err(); err != nil {
		return fmt.Errorf("redis: commit: %w", err)
	}
	return nil
}

// Release implements [dedupe.Store].
func (s *Backend) Release(ctx context.Context, key string) error {
	if err := releaseScript.Run(ctx, s.c, []string{s.prefix + "k:" + key}, pendingValue).Err(); err != nil {
		return fmt.Errorf("redis: release: %w", err)
	}
	return nil
}

// Checkpoint returns the poller checkpoint kept in a Redis hash.
func (s *Backend) Checkpoint() *Checkpoint { return &Checkpoint{s: s} }

// Checkpoint is a [poller.Checkpoint] in Redis.
type Checkpoint struct{ s *Backend }

// Load implements [poller.Checkpoint].
func (c *Checkpoint) Load(ctx context.Context, name string) (string, error) {
	v, err := c.s.c.HGet(ctx, c.s.prefix+"checkpoints", name).Result()
	if errors.Is(err, goredis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("redis: load checkpoint: %w", err)
	}
	return v, nil
}

// Save implements [poller.Checkpoint].
func (c *Checkpoint) Save(ctx context.Context, name, cursor string) error {
	if err := c.s.c.HSet(ctx, c.s.prefix+"checkpoints", name, cursor).Err(); err != nil {
		return fmt.Errorf("redis: save checkpoint: %w", err)
	}
	return nil
}

// Lease returns the leader lease of this store's holder.
func (s *Backend) Lease() *Lease { return &Lease{s: s} }

// Lease is a [poller.Lease] in Redis: a key per name holding the holder's
// token, with the lease as its expiry.
type Lease struct{ s *Backend }

// acquireScript takes the lease if free, or extends it if the caller holds
// it.
var acquireScript = goredis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`)

// renewScript extends the lease only for its holder.
var renewScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0`)

// dropScript deletes the lease only for its holder.
var dropScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Acquire implements [poller.Lease].
func (l *Lease) Acquire(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	return l.run(ctx, acquireScript, name, ttl)
}

// Renew implements [poller.Lease].
func (l *Lease) Renew(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	return l.run(ctx, renewScript, name, ttl)
}

func (l *Lease) run(ctx context.Context, script *goredis.Script, name string, ttl time.Duration) (bool, error) {
	n, err := script.Run(ctx, l.s.c, []string{l.s.prefix + "lease:" + name}, l.s.holder, ms(ttl)).Int()
	if err != nil {
		return false, fmt.Errorf("redis: lease: %w", err)
	}
	return n == 1, nil
}

// Release implements [poller.Lease].
func (l *Lease) Release(ctx context.Context, name string) error {
	if err := dropScript.Run(ctx, l.s.c, []string{l.s.prefix + "lease:" + name}, l.s.holder).Err(); err != nil {
		return fmt.Errorf("redis: release lease: %w", err)
	}
	return nil
}

// Ping reports whether the server answers; the stream's health check
// calls it (see intake.Pinger).
func (s *Backend) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: ping: %w", err)
	}
	return nil
}
