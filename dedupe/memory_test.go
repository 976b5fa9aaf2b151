package dedupe_test

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
)

func TestMemoryConformance(t *testing.T) {
	dedupetest.Run(t, func(t *testing.T) dedupe.Store { return dedupe.NewMemory() })
}

func TestMemoryConformanceOneShard(t *testing.T) {
	dedupetest.Run(t, func(t *testing.T) dedupe.Store {
		return dedupe.NewMemory(dedupe.WithShards(1), dedupe.WithCapacity(16))
	})
}

// fakeClock is a manual clock for expiry tests.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestMemoryExpiryWithClock(t *testing.T) {
	clk := &fakeClock{}
	m := dedupe.NewMemory(dedupe.WithClock(clk.Now))
	ctx := context.Background()

	st, err := m.Claim(ctx, "k", time.Minute)
	require.NoError(t, err)
	assert.Equal(t, dedupe.Claimed, st)

	clk.Advance(59 * time.Second)
	st, _ = m.Claim(ctx, "k", time.Minute)
	assert.Equal(t, dedupe.Pending, st, "lease still running")

	clk.Advance(2 * time.Second)
	st, _ = m.Claim(ctx, "k", time.Minute)
	assert.Equal(t, dedupe.Claimed, st, "lease expired")

	require.NoError(t, m.Commit(ctx, "k", time.Hour))
	clk.Advance(59 * time.Minute)
	st, _ = m.Claim(ctx, "k", time.Minute)
	assert.Equal(t, dedupe.Done, st)
	clk.Advance(2 * time.Minute)
	st, _ = m.Claim(ctx, "k", time.Minute)
	assert.Equal(t, dedupe.Claimed, st, "retention expired")
	assert.Equal(t, int64(2), m.Stats().Expired)
}

func TestMemoryInvalidDuration(t *testing.T) {
	m := dedupe.NewMemory()
	_, err := m.Claim(context.Background(), "k", 0)
	assert.ErrorIs(t, err, dedupe.ErrInvalidDuration)
	assert.ErrorIs(t, m.Commit(context.Background(), "k", -time.Second), dedupe.ErrInvalidDuration)
}

func TestMemoryEvictsOldestFirst(t *testing.T) {
	m := dedupe.NewMemory(dedupe.WithShards(1), dedupe.WithCapacity(100))
	ctx := context.Background()
	for i := range 150 {
		st, err := m.Claim(ctx, strconv.Itoa(i), time.Hour)
		require.NoError(t, err)
		require.Equal(t, dedupe.Claimed, st)
	}
	stats := m.Stats()
	assert.Equal(t, 100, stats.Entries)
	assert.Equal(t, int64(50), stats.Evicted)
	// The first 50 are gone (claimable again), the last 100 are still held.
	for i := range 150 {
		st, err := m.Claim(ctx, strconv.Itoa(i), time.Hour)
		require.NoError(t, err)
		if i < 50 {
			assert.Equal(t, dedupe.Claimed, st, "key %d should have been evicted", i)
			break // claiming evicts the next oldest; one probe is enough
		}
	}
	st, _ := m.Claim(ctx, "149", time.Hour)
	assert.Equal(t, dedupe.Pending, st, "newest key kept")
}

func TestMemoryBoundedUnderReclaimChurn(t *testing.T) {
	// Releasing and claiming the same few keys must not grow the store's
	// bookkeeping without bound.
	m := dedupe.NewMemory(dedupe.WithShards(1), dedupe.WithCapacity(10))
	ctx := context.Background()
	require.NoError(t, m.Commit(ctx, "long-lived", time.Hour))
	for i := range 100_000 {
		k := strconv.Itoa(i % 3)
		_, err := m.Claim(ctx, k, time.Hour)
		require.NoError(t, err)
		require.NoError(t, m.Release(ctx, k))
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	assert.Less(t, ms.HeapInuse, uint64(64<<20))
	assert.LessOrEqual(t, m.Stats().Entries, 10)
}

func TestMemoryConcurrentDistinctAndShared(t *testing.T) {
	m := dedupe.NewMemory(dedupe.WithCapacity(1_000_000))
	ctx := context.Background()
	var claimed atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				// half the keys are shared by all goroutines
				k := fmt.Sprintf("g%d-%d", g, i)
				if i%2 == 0 {
					k = fmt.Sprintf("shared-%d", i)
				}
				st, err := m.Claim(ctx, k, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if st == dedupe.Claimed {
					claimed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int64(8*1000+1000), claimed.Load())
}

// mutexMap is the baseline the benchmark compares against: what one writes
// without a library, a map behind one mutex.
type mutexMap struct {
	mu sync.Mutex
	m  map[string]int64
}

func (b *mutexMap) claim(key string, lease time.Duration) bool {
	now := time.Now().UnixNano()
	b.mu.Lock()
	defer b.mu.Unlock()
	if exp, ok := b.m[key]; ok && exp > now {
		return false
	}
	b.m[key] = now + int64(lease)
	return true
}

func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "6:source:evt_" + strconv.Itoa(i)
	}
	return keys
}

// BenchmarkClaimParallel compares the memory store's Claim on distinct keys
// with the mutex+map baseline in the same run; both are sized for the
// 2^20 keys so that neither pays for map growth. Report the ratio of ns/op:
//
//	go test ./dedupe -run x -bench ClaimParallel -cpu 2
func BenchmarkClaimParallel(b *testing.B) {
	keys := benchKeys(1 << 20)
	b.Run("impl=baseline-mutex-map", func(b *testing.B) {
		bm := &mutexMap{m: make(map[string]int64, 1<<20)}
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1)
				bm.claim(keys[i&(1<<20-1)], time.Hour)
			}
		})
	})
	b.Run("impl=memory", func(b *testing.B) {
		m := dedupe.NewMemory(dedupe.WithCapacity(1 << 20))
		ctx := context.Background()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1)
				if _, err := m.Claim(ctx, keys[i&(1<<20-1)], time.Hour); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkMemoryBounded claims 1,000,000 unique keys with a capacity of
// 10,000 and reports the live heap afterwards (heap-MB) and the evictions.
func BenchmarkMemoryBounded(b *testing.B) {
	for range b.N {
		m := dedupe.NewMemory(dedupe.WithCapacity(10_000))
		ctx := context.Background()
		var before runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		buf := make([]byte, 0, 32)
		for i := range 1_000_000 {
			buf = strconv.AppendInt(append(buf[:0], "6:source:evt_"...), int64(i), 10)
			if _, err := m.Claim(ctx, string(buf), time.Hour); err != nil {
				b.Fatal(err)
			}
		}
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		st := m.Stats()
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/(1<<20), "heap-MB")
		b.ReportMetric(float64(st.Entries), "entries")
		b.ReportMetric(float64(st.Evicted), "evicted")
		if after.HeapAlloc > before.HeapAlloc+16<<20 {
			b.Errorf("heap grew by %d bytes for a 10,000-key store", after.HeapAlloc-before.HeapAlloc)
		}
		runtime.KeepAlive(m)
	}
}

// Issue #21, item 20: a RecordState is its word in JSON, both ways, and
// a Record's keys are lower case.
func TestRecordJSON(t *testing.T) {
	r := dedupe.Record{Key: "4:shop:a", Seq: 3, State: dedupe.Dead, Attempts: 2,
		Failure: &dedupe.Failure{Err: "no", Attempts: 2}}
	b, err := json.Marshal(r)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"state":"dead"`)
	assert.Contains(t, string(b), `"key":"4:shop:a"`)
	var back dedupe.Record
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, dedupe.Dead, back.State)
	assert.Error(t, json.Unmarshal([]byte(`{"state":"zombie"}`), &back))
	assert.Equal(t, "claimed", dedupe.Claimed.String(), "a claim's State is another type")
}
