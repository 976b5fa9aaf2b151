package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// Queue is a durable [dedupe.Queue] in Redis: events are stored with
// their keys, so that what a stream acknowledged survives a crash of its
// process (another replica, or the restarted process, adopts it) and,
// with the right persistence, of Redis itself.
//
// Durability is Redis's: run it with the append-only file on and
// appendfsync always (redis-server --appendonly yes --appendfsync always)
// and nothing Enqueue acknowledged is lost across a Redis crash, since
// Redis writes and syncs each script's effects before it replies. With
// appendfsync everysec up to a second of acknowledged events can be lost
// in a crash of the Redis host; with no persistence, a Redis restart loses
// the queue.
//
// Each Queue is one holder. It proves it is alive with a heartbeat key it
// renews every second (it expires after [WithHeartbeat], 5 seconds by
// default); events held by a holder whose heartbeat is gone (its process
// was killed) are adopted by the others, a live holder keeps its events
// however long it pauses, and [Queue.Close] ends the heartbeat so that
// they are adopted at once. Every operation is one Lua script, so each is
// atomic; all keys share the prefix, which holds a hash tag ("{intake}:q:"
// by default) so that they live in one slot of a Redis Cluster.
type Queue struct {
	c      goredis.UniversalClient
	owned  bool
	prefix string
	holder string
	ttl    time.Duration

	reqs chan *enqueueReq // Enqueue calls waiting for a writer
	stop chan struct{}
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup // the writers

	wakeOnce sync.Once // AdoptReady's subscription
	wakeCh   chan struct{}
	pubsub   *goredis.PubSub
	wakeDone chan struct{}

	lostMu sync.Mutex
	lost   []any // adoptions whose reply was lost: their marks, to give back
	// adoptReplyLost, when set (tests), fails an adoption after its
	// script ran, as a connection cut while the reply comes back does.
	adoptReplyLost func() error
}

// QueueOption configures a [Queue].
type QueueOption func(*Queue)

// WithQueuePrefix sets the prefix of the queue's keys. Defaults to
// "{intake}:q:". Keep a hash tag in it on a Redis Cluster.
func WithQueuePrefix(p string) QueueOption { return func(q *Queue) { q.prefix = p } }

// WithHeartbeat sets how long a holder is taken for alive after its last
// heartbeat (renewed every fifth of it): how soon the events of a killed
// process are adopted. Defaults to 5 seconds; it must be at least 100 ms.
func WithHeartbeat(ttl time.Duration) QueueOption { return func(q *Queue) { q.ttl = ttl } }

// DefaultHeartbeat is the default of [WithHeartbeat].
const DefaultHeartbeat = 5 * time.Second

// NewQueue returns a queue on c, a client the caller owns, and starts its
// heartbeat. Close it to stop the heartbeat.
func NewQueue(ctx context.Context, c goredis.UniversalClient, opts ...QueueOption) (*Queue, error) {
	var r [8]byte
	_, _ = rand.Read(r[:])
	q := &Queue{c: c, prefix: "{intake}:q:", holder: hex.EncodeToString(r[:]), ttl: DefaultHeartbeat,
		stop: make(chan struct{}), done: make(chan struct{})}
	for _, o := range opts {
		o(q)
	}
	if q.ttl < 100*time.Millisecond {
		return nil, fmt.Errorf("redis: heartbeat %v: %w", q.ttl, dedupe.ErrInvalidDuration)
	}
	if err := q.beat(ctx); err != nil {
		return nil, err
	}
	q.reqs = make(chan *enqueueReq, 4*maxEnqueueBatch)
	go q.heartbeat()
	for range enqueueWriters {
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			q.writer()
		}()
	}
	return q, nil
}

// OpenQueue connects to the server at url and returns a queue that owns
// the client: Close closes it.
func OpenQueue(ctx context.Context, url string, opts ...QueueOption) (*Queue, error) {
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	c := goredis.NewClient(o)
	q, err := NewQueue(ctx, c, opts...)
	if err != nil {
		c.Close()
		return nil, err
	}
	q.owned = true
	return q, nil
}

func (q *Queue) liveKey() string { return q.prefix + "live:" + q.holder }

func (q *Queue) beat(ctx context.Context) error {
	if err := q.c.Set(ctx, q.liveKey(), "1", q.ttl).Err(); err != nil {
		return fmt.Errorf("redis: heartbeat: %w", err)
	}
	return nil
}

func (q *Queue) heartbeat() {
	defer close(q.done)
	t := time.NewTicker(q.ttl / 5)
	defer t.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), q.ttl/5)
			_ = q.beat(ctx) // a missed beat is retried at the next tick
			cancel()
		}
	}
}

// Close ends the holder: its heartbeat stops and is deleted, so that
// another holder adopts its events at once, and the client is closed if
// [OpenQueue] made it.
func (q *Queue) Close() error {
	var err error
	q.once.Do(func() {
		close(q.stop)
		<-q.done
		q.wg.Wait()
		// Calls handed over before the writers stopped are answered.
		for {
			select {
			case r := <-q.reqs:
				q.write([]*enqueueReq{r})
				continue
			default:
			}
			break
		}
		q.stopAdoptListener()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		err = q.c.Del(ctx, q.liveKey()).Err()
		q.notifyAdopt(ctx) // its events are adoptable now
		if q.owned {
			err = errors.Join(err, q.c.Close())
		}
	})
	return err
}

// Ping reports whether the server answers; the stream's health check
// calls it.
func (q *Queue) Ping(ctx context.Context) error {
	if err := q.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: ping: %w", err)
	}
	return nil
}

// The record of a key is a hash at prefix "e:" key: st (1 queued, 2 done,
// 3 dead), seq, ev (the event's binary encoding), src, typ, att, fail and
// h (its holder; empty when given back). Queued and dead records are
// indexed by seq in "all"; dead ones in "dead"; queued ones in
// "held:" holder, or in "free" when given back. "holders" lists the
// holders that have held events, so that adoption looks only at the
// indexes of dead holders and at "free": in proportion to what it takes,
// not to the backlog.

var enqueueScript = goredis.NewScript(`
local p, holder, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out, claimed = {}, false
for i = 0, n - 1 do
  local key, ev, src, typ = ARGV[4 + i*4], ARGV[5 + i*4], ARGV[6 + i*4], ARGV[7 + i*4]
  local ek = p .. 'e:' .. key
  local st = redis.call('HGET', ek, 'st')
  if st == '1' then
    out[#out + 1] = 1
  elseif st == '2' then
    out[#out + 1] = 2
  else
    if st == '3' then
      redis.call('ZREM', p .. 'dead', key)
      redis.call('DEL', ek)
    end
    local seq = redis.call('INCR', p .. 'seq')
    redis.call('HSET', ek, 'st', '1', 'seq', seq, 'ev', ev, 'src', src, 'typ', typ, 'att', 0, 'h', holder)
    redis.call('ZADD', p .. 'held:' .. holder, seq, key)
    redis.call('ZADD', p .. 'all', seq, key)
    claimed = true
    out[#out + 1] = 0
  end
end
if claimed then redis.call('SADD', p .. 'holders', holder) end
return out`)

// unindex is the Lua that takes a key out of every index.
const unindex = `
local function unindex(p, key, ek)
  local h = redis.call('HGET', ek, 'h')
  if h and h ~= '' then redis.call('ZREM', p .. 'held:' .. h, key) end
  redis.call('ZREM', p .. 'free', key)
  redis.call('ZREM', p .. 'all', key)
  redis.call('ZREM', p .. 'dead', key)
end
`

var commitScript = goredis.NewScript(unindex + `
local p, retain = ARGV[1], ARGV[2]
for i = 3, #ARGV do
  local key = ARGV[i]
  local ek = p .. 'e:' .. key
  unindex(p, key, ek)
  redis.call('DEL', ek)
  redis.call('HSET', ek, 'st', '2')
  redis.call('PEXPIRE', ek, retain)
end
return 0`)

var releaseQueuedScript = goredis.NewScript(unindex + `
local p, key = ARGV[1], ARGV[2]
local ek = p .. 'e:' .. key
if redis.call('HGET', ek, 'st') ~= '1' then return 0 end
unindex(p, key, ek)
return redis.call('DEL', ek)`)

var discardScript = goredis.NewScript(unindex + `
local p, key = ARGV[1], ARGV[2]
local ek = p .. 'e:' .. key
local st = redis.call('HGET', ek, 'st')
if st ~= '1' and st ~= '3' then return 0 end
unindex(p, key, ek)
return redis.call('DEL', ek)`)

// giveBackScript gives this holder's claims on the keys back: adoptable at
// once, without an attempt counted.
var giveBackScript = goredis.NewScript(`
local p, holder = ARGV[1], ARGV[2]
for i = 3, #ARGV do
  local key = ARGV[i]
  local ek = p .. 'e:' .. key
  local v = redis.call('HMGET', ek, 'st', 'h', 'seq')
  if v[1] == '1' and v[2] == holder then
    redis.call('HSET', ek, 'h', '')
    redis.call('ZREM', p .. 'held:' .. holder, key)
    redis.call('ZADD', p .. 'free', v[3], key)
  end
end
return 0`)

// unadoptScript gives back what this holder's adoptions marked ARGV[3:]
// took: their replies were lost, so it never got those events. It reads
// this holder's index, which is only ever needed after a lost reply.
var unadoptScript = goredis.NewScript(`
local p, holder = ARGV[1], ARGV[2]
local lost = {}
for i = 3, #ARGV do lost[ARGV[i]] = true end
for _, key in ipairs(redis.call('ZRANGE', p .. 'held:' .. holder, 0, -1)) do
  local ek = p .. 'e:' .. key
  local v = redis.call('HMGET', ek, 'st', 'h', 'seq', 'tok')
  if v[1] == '1' and v[2] == holder and v[4] and lost[v[4]] then
    redis.call('HSET', ek, 'h', '', 'tok', '')
    redis.call('ZREM', p .. 'held:' .. holder, key)
    redis.call('ZADD', p .. 'free', v[3], key)
  end
end
return 0`)

// adoptScript takes up to n events, oldest first, from "free" and from the
// holders whose heartbeat is gone; those of a dead holder count an attempt
// if it had started them (the field go, set by startScript), and say so.
// Each is marked with the call's random number (ARGV[4]), so that what a
// call whose reply was lost took can be given back.
// Never this holder's own: with its heartbeat lapsed (its link cut for
// longer than the heartbeat) they look orphaned, but it has them in memory.
var adoptScript = goredis.NewScript(`
local p, holder, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local cands = {}
local fr = redis.call('ZRANGE', p .. 'free', 0, n - 1, 'WITHSCORES')
for i = 1, #fr, 2 do cands[#cands + 1] = {tonumber(fr[i + 1]), fr[i], false} end
for _, h in ipairs(redis.call('SMEMBERS', p .. 'holders')) do
  if h ~= holder and redis.call('EXISTS', p .. 'live:' .. h) == 0 then
    local got = redis.call('ZRANGE', p .. 'held:' .. h, 0, n - 1, 'WITHSCORES')
    if #got == 0 then redis.call('SREM', p .. 'holders', h) end
    for i = 1, #got, 2 do cands[#cands + 1] = {tonumber(got[i + 1]), got[i], h} end
  end
end
table.sort(cands, function(a, b) return a[1] < b[1] end)
local out = {}
for i = 1, math.min(n, #cands) do
  local c = cands[i]
  local key = c[2]
  local ek = p .. 'e:' .. key
  local crashed = 0
  if c[3] then
    redis.call('ZREM', p .. 'held:' .. c[3], key)
    if redis.call('HGET', ek, 'go') == '1' then
      redis.call('HINCRBY', ek, 'att', 1) -- its holder died delivering it
    end
    crashed = 1
  else
    redis.call('ZREM', p .. 'free', key)
  end
  redis.call('HDEL', ek, 'go')
  redis.call('HSET', ek, 'h', holder, 'tok', ARGV[4])
  redis.call('ZADD', p .. 'held:' .. holder, c[1], key)
  local v = redis.call('HMGET', ek, 'ev', 'att')
  out[#out + 1] = key
  out[#out + 1] = v[1]
  out[#out + 1] = v[2]
  out[#out + 1] = crashed
end
if #out > 0 then redis.call('SADD', p .. 'holders', holder) end
return out`)

// startScript marks this holder's (ARGV[2]) queued events ARGV[3:]
// started: a crash of the holder counts an attempt against them.
var startScript = goredis.NewScript(`
local p, holder = ARGV[1], ARGV[2]
for i = 3, #ARGV do
  local ek = p .. 'e:' .. ARGV[i]
  local v = redis.call('HMGET', ek, 'st', 'h')
  if v[1] == '1' and v[2] == holder then redis.call('HSET', ek, 'go', '1') end
end
return 0`)

var buryScript = goredis.NewScript(unindex + `
local p, key, retain, att, fail = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ek = p .. 'e:' .. key
if redis.call('HGET', ek, 'st') ~= '1' then return 0 end
unindex(p, key, ek)
local seq = redis.call('HGET', ek, 'seq')
redis.call('HSET', ek, 'st', '3', 'h', '', 'att', att, 'fail', fail)
redis.call('ZADD', p .. 'dead', seq, key)
redis.call('ZADD', p .. 'all', seq, key)
redis.call('PEXPIRE', ek, retain)
return 1`)

var unindexGoneScript = goredis.NewScript(`
local p, index = ARGV[1], ARGV[2]
for i = 3, #ARGV do
  if redis.call('EXISTS', p .. 'e:' .. ARGV[i]) == 0 then redis.call('ZREM', index, ARGV[i]) end
end
return 0`)

var replayScript = goredis.NewScript(`
local p, key = ARGV[1], ARGV[2]
local ek = p .. 'e:' .. key
if redis.call('HGET', ek, 'st') ~= '3' then return 0 end
local seq = redis.call('HGET', ek, 'seq')
redis.call('PERSIST', ek)
redis.call('HSET', ek, 'st', '1', 'att', 0, 'h', '')
redis.call('HDEL', ek, 'fail', 'go')
redis.call('ZREM', p .. 'dead', key)
redis.call('ZADD', p .. 'free', seq, key)
return 1`)

// Group commit of enqueues: concurrent Enqueue calls wait in a channel;
// each of two writers takes what is waiting (up to maxEnqueueBatch) and
// runs one script for all of it, so that 32 concurrent puts cost a round
// trip or two, not 32. Within a batch the script takes the events in
// order: a second event of one key is answered Pending, as it would be
// one call later. Each caller returns once the script has run (and, with
// appendfsync always, once Redis has synced it).

const (
	maxEnqueueBatch = 256
	enqueueWriters  = 2
)

type enqueueReq struct {
	ctx      context.Context
	key      string
	enc      []byte
	src, typ string
	st       dedupe.State
	err      error
	done     chan struct{}
}

func (q *Queue) writer() {
	for {
		var batch []*enqueueReq
		select {
		case r := <-q.reqs:
			batch = append(batch, r)
		case <-q.stop:
			return
		}
	fill:
		for len(batch) < maxEnqueueBatch {
			select {
			case r := <-q.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		q.write(batch)
	}
}

// write runs the enqueue script for a batch and answers each request.
func (q *Queue) write(batch []*enqueueReq) {
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	live := batch[:0:0]
	for _, r := range batch {
		if r.ctx.Err() != nil {
			r.err = r.ctx.Err()
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	args := make([]any, 3, 3+4*len(live))
	args[0], args[1], args[2] = q.prefix, q.holder, len(live)
	for _, r := range live {
		args = append(args, r.key, r.enc, r.src, r.typ)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := enqueueScript.Run(ctx, q.c, []string{q.prefix + "seq"}, args...).Int64Slice()
	for i, r := range live {
		switch {
		case err != nil:
			r.err = fmt.Errorf("redis: enqueue: %w", err)
		case res[i] == 0:
			r.st = dedupe.Claimed
		case res[i] == 1:
			r.st = dedupe.Pending
		default:
			r.st = dedupe.Done
		}
	}
}

// newEnqueueReq checks the lease and encodes e for the enqueue script.
func newEnqueueReq(ctx context.Context, key string, e event.Event, lease time.Duration) (*enqueueReq, error) {
	if err := validDuration(lease); err != nil {
		return nil, err
	}
	enc, err := e.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	return &enqueueReq{ctx: ctx, key: key, enc: enc, src: e.Source, typ: e.Type, done: make(chan struct{})}, nil
}

// errQueueClosed is returned by an Enqueue after Close.
var errQueueClosed = errors.New("redis: queue closed")

// Enqueue implements [dedupe.Queue]: it joins the next batch. The lease
// is not used: a holder keeps its events while its heartbeat lives.
func (q *Queue) Enqueue(ctx context.Context, key string, e event.Event, lease time.Duration) (dedupe.State, error) {
	r, err := newEnqueueReq(ctx, key, e, lease)
	if err != nil {
		return 0, err
	}
	select {
	case q.reqs <- r:
	case <-q.stop:
		return 0, errQueueClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	<-r.done // once handed over, it is written or failed: wait, so that a stored event is never reported unstored
	return r.st, r.err
}

// EnqueueMany implements [dedupe.BatchQueue]: one script for the batch.
func (q *Queue) EnqueueMany(ctx context.Context, keys []string, events []event.Event, lease time.Duration) ([]dedupe.State, []error) {
	states, errs := make([]dedupe.State, len(keys)), make([]error, len(keys))
	var reqs []*enqueueReq
	var idx []int // of the requests, by index in keys
	for i, e := range events {
		r, err := newEnqueueReq(ctx, keys[i], e, lease)
		if err != nil {
			errs[i] = err
			continue
		}
		reqs, idx = append(reqs, r), append(idx, i)
	}
	select {
	case <-q.stop:
		for _, i := range idx {
			errs[i] = errQueueClosed
		}
		return states, errs
	default:
	}
	if len(reqs) > 0 {
		q.write(reqs) // a page is a batch already: one script, on this goroutine
	}
	for j, i := range idx {
		states[i], errs[i] = reqs[j].st, reqs[j].err
	}
	return states, errs
}

// Adopt implements [dedupe.Queue]: it takes events given back and those
// of holders whose heartbeat is gone, oldest first, looking at no other.
func (q *Queue) Adopt(ctx context.Context, n int, lease time.Duration) ([]dedupe.Stored, error) {
	if err := validDuration(lease); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	if err := q.giveBackLost(ctx); err != nil {
		return nil, err
	}
	token := strconv.FormatUint(mrand.Uint64(), 36)
	res, err := adoptScript.Run(ctx, q.c, []string{q.prefix + "free"}, q.prefix, q.holder, n, token).Slice()
	if err == nil && q.adoptReplyLost != nil {
		err = q.adoptReplyLost()
	}
	if err != nil {
		// The script may have run and its reply been lost: what it took
		// is given back at the next call.
		q.lostMu.Lock()
		q.lost = append(q.lost, token)
		q.lostMu.Unlock()
		return nil, fmt.Errorf("redis: adopt: %w", err)
	}
	out := make([]dedupe.Stored, 0, len(res)/4)
	for i := 0; i+3 < len(res); i += 4 {
		key, _ := res[i].(string)
		enc, _ := res[i+1].(string)
		att, _ := strconv.Atoi(fmt.Sprint(res[i+2]))
		var e event.Event
		if err := e.UnmarshalBinary([]byte(enc)); err != nil {
			return out, fmt.Errorf("redis: adopt %q: %w", key, err)
		}
		out = append(out, dedupe.Stored{Key: key, Event: e, Attempts: att, Crashed: fmt.Sprint(res[i+3]) == "1"})
	}
	return out, nil
}

var _ dedupe.Starter = (*Queue)(nil)

// Start implements [dedupe.Starter]: it marks this holder's queued events
// under keys as being delivered, so that a crash of this holder counts
// an attempt against them (and against no other it holds).
func (q *Queue) Start(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return ctx.Err()
	}
	args := make([]any, 0, len(keys)+2)
	args = append(args, q.prefix, q.holder)
	for _, k := range keys {
		args = append(args, k)
	}
	if err := startScript.Run(ctx, q.c, []string{q.prefix + "free"}, args...).Err(); err != nil {
		return fmt.Errorf("redis: start: %w", err)
	}
	return nil
}

// giveBackLost gives back what the adoptions whose reply was lost took
// and wakes the adopters.
func (q *Queue) giveBackLost(ctx context.Context) error {
	q.lostMu.Lock()
	lost := q.lost
	q.lostMu.Unlock()
	if len(lost) == 0 {
		return nil
	}
	args := append([]any{q.prefix, q.holder}, lost...)
	if err := unadoptScript.Run(ctx, q.c, []string{q.prefix + "free"}, args...).Err(); err != nil && !errors.Is(err, goredis.Nil) {
		return fmt.Errorf("redis: give back a lost adoption: %w", err)
	}
	q.lostMu.Lock()
	q.lost = q.lost[len(lost):]
	q.lostMu.Unlock()
	q.notifyAdopt(ctx)
	return nil
}

// Extend implements [dedupe.Queue]. A lease above zero only renews the
// heartbeat (claims live as long as it does); zero gives the keys back.
func (q *Queue) Extend(ctx context.Context, keys []string, lease time.Duration) error {
	if lease < 0 {
		return validDuration(lease)
	}
	if lease > 0 {
		return q.beat(ctx)
	}
	if len(keys) == 0 {
		return nil
	}
	args := append([]any{q.prefix, q.holder}, strs(keys)...)
	if err := giveBackScript.Run(ctx, q.c, []string{q.prefix + "free"}, args...).Err(); err != nil {
		return fmt.Errorf("redis: give back: %w", err)
	}
	q.notifyAdopt(ctx)
	return nil
}

// CommitMany implements [dedupe.Queue]: one script for the batch.
func (q *Queue) CommitMany(ctx context.Context, keys []string, retain time.Duration) error {
	if err := validDuration(retain); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	args := append([]any{q.prefix, ms(retain)}, strs(keys)...)
	if err := commitScript.Run(ctx, q.c, []string{q.prefix + "all"}, args...).Err(); err != nil {
		return fmt.Errorf("redis: commit: %w", err)
	}
	return nil
}

// Release implements [dedupe.Queue].
func (q *Queue) Release(ctx context.Context, key string) error {
	if err := releaseQueuedScript.Run(ctx, q.c, []string{q.prefix + "all"}, q.prefix, key).Err(); err != nil {
		return fmt.Errorf("redis: release: %w", err)
	}
	return nil
}

// Bury implements [dedupe.Queue].
func (q *Queue) Bury(ctx context.Context, key string, f dedupe.Failure, retain time.Duration) error {
	if err := validDuration(retain); err != nil {
		return err
	}
	fj, _ := json.Marshal(f)
	if err := buryScript.Run(ctx, q.c, []string{q.prefix + "dead"}, q.prefix, key, ms(retain), f.Attempts, fj).Err(); err != nil {
		return fmt.Errorf("redis: bury: %w", err)
	}
	return nil
}

// Replay implements [dedupe.Inspector].
func (q *Queue) Replay(ctx context.Context, key string) error {
	ok, err := replayScript.Run(ctx, q.c, []string{q.prefix + "dead"}, q.prefix, key).Int()
	if err != nil {
		return fmt.Errorf("redis: replay: %w", err)
	}
	if ok == 0 {
		if _, err := q.Get(ctx, key); err != nil {
			return err // not found
		}
		return nil
	}
	q.notifyAdopt(ctx)
	return nil
}

// Discard implements [dedupe.Inspector].
func (q *Queue) Discard(ctx context.Context, key string) error {
	n, err := discardScript.Run(ctx, q.c, []string{q.prefix + "all"}, q.prefix, key).Int()
	if err != nil {
		return fmt.Errorf("redis: discard: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("redis: discard %q: %w", key, dedupe.ErrNotFound)
	}
	return nil
}

// Get implements [dedupe.Inspector].
func (q *Queue) Get(ctx context.Context, key string) (dedupe.Record, error) {
	v, err := q.c.HMGet(ctx, q.prefix+"e:"+key, "st", "seq", "att", "fail", "ev").Result()
	if err != nil {
		return dedupe.Record{}, fmt.Errorf("redis: get: %w", err)
	}
	r, ok, err := record(key, v)
	if err != nil {
		return r, fmt.Errorf("redis: get: %w", err)
	}
	if !ok {
		return r, fmt.Errorf("redis: get %q: %w", key, dedupe.ErrNotFound)
	}
	return r, nil
}

// record builds a Record from HMGET st, seq, att, fail, ev; ok is false
// when the key holds no queued or dead event.
func record(key string, v []any) (dedupe.Record, bool, error) {
	st, _ := v[0].(string)
	if st != "1" && st != "3" {
		return dedupe.Record{}, false, nil
	}
	seq, _ := strconv.ParseInt(str(v[1]), 10, 64)
	att, _ := strconv.Atoi(str(v[2]))
	r, err := dedupe.DecodeRecord([]byte(key), seq, st == "3", att, []byte(str(v[3])), []byte(str(v[4])))
	return r, err == nil, err
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// List implements [dedupe.Inspector]. It walks the index of the state
// asked for ("dead", or "all") in seq order from f.After, reading records
// in batches, and drops index entries whose record expired.
func (q *Queue) List(ctx context.Context, f dedupe.Filter) ([]dedupe.Record, error) {
	limit := f.Max()
	index := q.prefix + "all"
	if f.State == dedupe.Dead {
		index = q.prefix + "dead"
	}
	var out []dedupe.Record
	after := f.After
	for len(out) < limit {
		zs, err := q.c.ZRangeByScoreWithScores(ctx, index, &goredis.ZRangeBy{
			Min: "(" + strconv.FormatInt(after, 10), Max: "+inf", Count: int64(max(limit, 100)),
		}).Result()
		if err != nil {
			return nil, fmt.Errorf("redis: list: %w", err)
		}
		if len(zs) == 0 {
			break
		}
		pipe := q.c.Pipeline()
		cmds := make([]*goredis.SliceCmd, len(zs))
		for i, z := range zs {
			cmds[i] = pipe.HMGet(ctx, q.prefix+"e:"+z.Member.(string), "st", "seq", "att", "fail", "ev", "src", "typ")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
			return nil, fmt.Errorf("redis: list: %w", err)
		}
		var gone []any
		for i, z := range zs {
			after = int64(z.Score)
			key := z.Member.(string)
			v := cmds[i].Val()
			r, ok, err := record(key, v)
			if err != nil {
				return nil, fmt.Errorf("redis: list: %w", err)
			}
			if !ok {
				gone = append(gone, key) // a dead record whose retention ended
				continue
			}
			if (f.State != 0 && r.State != f.State) || (f.Source != "" && str(v[5]) != f.Source) || (f.Type != "" && str(v[6]) != f.Type) {
				continue
			}
			out = append(out, r)
			if len(out) == limit {
				break
			}
		}
		if len(gone) > 0 {
			// Only if still gone: the key may have arrived again meanwhile.
			_ = unindexGoneScript.Run(ctx, q.c, []string{index}, append([]any{q.prefix, index}, gone...)...).Err()
		}
	}
	return out, nil
}

func strs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
