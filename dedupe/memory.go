package dedupe

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Memory is an in-memory [Store]: sharded for concurrency, bounded in size,
// and with no goroutine or timer per key. Leases and retention expire when a
// key is next looked at; when a shard is over its share of the capacity, its
// oldest keys (by first claim) are evicted, and counted.
//
// Memory is only as durable as the process: a crash forgets every key, so
// events delivered before the crash may be delivered again after it, and a
// shared store is needed for several replicas. Use a backend module for
// either.
//
// A Memory is safe for concurrent use. Create one with [NewMemory]; the
// zero value is not usable. It holds no goroutine, so there is nothing to
// close.
type Memory struct {
	seed    maphash.Seed
	shards  []memShard
	mask    uint64
	perCap  int
	now     func() time.Time
	evicted atomic.Int64
	expired atomic.Int64
}

type memEntry struct {
	state State
	exp   int64 // unix nanoseconds
	seq   uint64
}

type memOrder struct {
	key string
	seq uint64
}

type memShard struct {
	mu    sync.Mutex
	m     map[string]memEntry
	order []memOrder // keys by first claim; entries whose seq differs are stale
	head  int
	seq   uint64
	_     [40]byte // keep shards on separate cache lines
}

// MemoryOption configures a [Memory].
type MemoryOption func(*memoryConfig)

type memoryConfig struct {
	capacity int
	shards   int
	now      func() time.Time
}

// WithCapacity bounds the number of keys the store holds. When it is
// reached, the oldest keys are evicted first, pending or done alike, and
// [Memory.Stats] counts them: an evicted done key can be delivered again if
// its event comes back, so size the capacity for the events of a retention
// window. Defaults to 100,000 (about 15 MB with 30-byte keys).
func WithCapacity(n int) MemoryOption {
	return func(c *memoryConfig) { c.capacity = n }
}

// WithShards sets the number of independently locked shards, rounded up to
// a power of two. Defaults to 64.
func WithShards(n int) MemoryOption {
	return func(c *memoryConfig) { c.shards = n }
}

// WithClock sets the clock the memory store reads for leases and
// retention, so that a test can move time instead of sleeping. Defaults
// to [time.Now].
func WithClock(now func() time.Time) MemoryOption {
	return func(c *memoryConfig) { c.now = now }
}

// NewMemory returns an empty in-memory store.
func NewMemory(opts ...MemoryOption) *Memory {
	cfg := memoryConfig{capacity: 100_000, shards: 64, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	n := 1
	for n < cfg.shards {
		n <<= 1
	}
	if cfg.capacity < n {
		cfg.capacity = n
	}
	m := &Memory{
		seed:   maphash.MakeSeed(),
		shards: make([]memShard, n),
		mask:   uint64(n - 1),
		perCap: (cfg.capacity + n - 1) / n,
		now:    cfg.now,
	}
	for i := range m.shards {
		// Pre-size up to a modest bound so that a busy store does not pay
		// for repeated map growth, without reserving much for small ones.
		m.shards[i].m = make(map[string]memEntry, min(m.perCap, 1<<14))
	}
	return m
}

func (m *Memory) shard(key string) *memShard {
	return &m.shards[maphash.String(m.seed, key)&m.mask]
}

// Claim implements [Store].
func (m *Memory) Claim(ctx context.Context, key string, lease time.Duration) (State, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if lease <= 0 {
		return 0, fmt.Errorf("dedupe: claim with lease %v: %w", lease, ErrInvalidDuration)
	}
	now := m.now().UnixNano()
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok {
		if e.exp > now {
			return e.state, nil
		}
		m.expired.Add(1)
	}
	s.insert(m, key, Pending, now+int64(lease), now)
	return Claimed, nil
}

// Commit implements [Store].
func (m *Memory) Commit(ctx context.Context, key string, retain time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if retain <= 0 {
		return fmt.Errorf("dedupe: commit with retention %v: %w", retain, ErrInvalidDuration)
	}
	now := m.now().UnixNano()
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok {
		e.state, e.exp = Done, now+int64(retain)
		s.m[key] = e
		return nil
	}
	s.insert(m, key, Done, now+int64(retain), now)
	return nil
}

// DoneUntil implements [DoneLookup].
func (m *Memory) DoneUntil(ctx context.Context, key string) (time.Time, bool, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, err
	}
	now := m.now().UnixNano()
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && e.state == Done && e.exp > now {
		return time.Unix(0, e.exp), true, nil
	}
	return time.Time{}, false, nil
}

// Release implements [Store].
func (m *Memory) Release(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && e.state == Pending {
		delete(s.m, key)
	}
	return nil
}

// insert adds key as a new entry at the back of the shard's order and
// keeps the shard within its capacity. s.mu must be held.
func (s *memShard) insert(m *Memory, key string, st State, exp, now int64) {
	s.seq++
	s.m[key] = memEntry{state: st, exp: exp, seq: s.seq}
	s.order = append(s.order, memOrder{key: key, seq: s.seq})

	// Evict from the front while over capacity; every eighth insert also
	// expires up to two keys there. Both skip order items whose entry was
	// replaced or removed.
	budget := 0
	if s.seq%8 == 0 {
		budget = 2
	}
	for s.head < len(s.order) && (len(s.m) > m.perCap || budget > 0) {
		front := s.order[s.head]
		e, live := s.m[front.key]
		live = live && e.seq == front.seq
		switch {
		case !live:
		case len(s.m) > m.perCap:
			delete(s.m, front.key)
			m.evicted.Add(1)
		case e.exp <= now:
			budget--
			delete(s.m, front.key)
			m.expired.Add(1)
		default:
			budget = 0
			continue
		}
		s.order[s.head] = memOrder{}
		s.head++
	}
	// Stale items accumulate when keys are released and claimed again;
	// rebuild the order once they outnumber the live ones.
	if live := len(s.order) - s.head; live > 2*len(s.m)+32 || s.head > len(s.order)/2 {
		kept := make([]memOrder, 0, len(s.m)+len(s.m)/4+8)
		for _, o := range s.order[s.head:] {
			if e, ok := s.m[o.key]; ok && e.seq == o.seq {
				kept = append(kept, o)
			}
		}
		s.order, s.head = kept, 0
	}
}

// MemoryStats are counters of a [Memory] store.
type MemoryStats struct {
	Entries int   // keys held now, pending and done, including expired ones not yet looked at
	Evicted int64 // keys dropped because the store was at capacity
	Expired int64 // keys found or swept after their lease or retention ended
}

// Stats returns the store's counters. It locks each shard in turn.
func (m *Memory) Stats() MemoryStats {
	st := MemoryStats{Evicted: m.evicted.Load(), Expired: m.expired.Load()}
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		st.Entries += len(s.m)
		s.mu.Unlock()
	}
	return st
}
