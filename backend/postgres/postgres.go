// Package postgres keeps intake's idempotency keys, durable queue, poller
// checkpoints and leader leases in PostgreSQL, so that several replicas
// share them: each event is processed once across replicas, queued events
// survive a crash, and one replica polls each source.
//
// A [Backend] is a [dedupe.Queue] and a [dedupe.Store]; [Backend.Checkpoint]
// and [Backend.Lease] give the poller's. Each Backend value is one holder
// of claims and leases: give every replica (every stream) its own.
//
//	pool, _ := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	pg, err := postgres.New(ctx, pool)
//	stream := intake.New(intake.WithQueue(pg))
//	p := poller.New("stripe", fetch, poller.WithCheckpoint(pg.Checkpoint()), poller.WithLease(pg.Lease(), 30*time.Second))
//
// Claim and enqueue are one INSERT … ON CONFLICT statement, so no crash can
// mark an event seen without keeping it. Keys are indexed by their SHA-256,
// so that a key of any length and any bytes fits, and queued events are
// kept in the byte-exact encoding of [event.Event.MarshalBinary]: nothing a
// provider sends in an id, a type, meta or a payload is refused or altered. Adoption of a crashed holder's
// events uses FOR UPDATE SKIP LOCKED. Expired keys are deleted in bounded
// batches through an index on their expiry. Tables are created on first
// use, idempotently, with a prefix (default "intake_") so that several
// streams can share one database; the SQL is in schema.sql.
package postgres

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

//go:embed schema.sql
var schemaSQL string

// Backend stores intake's state in PostgreSQL. Create it with [New] or
// [Open]. It is safe for concurrent use.
type Backend struct {
	pool   *pgxpool.Pool
	owned  bool   // Open made the pool; Close closes it
	holder string // the decimal of lockID
	lockID int32
	// lock is the connection that holds this holder's advisory lock for
	// the Backend's life: when the process dies, the server drops the
	// connection and the lock with it, and peers adopt at once.
	lock     *pgx.Conn
	lockMu   sync.Mutex
	lockStop chan struct{} // closed by Close: keepLock returns
	lockDone chan struct{}
	lockOnce sync.Once
	prefix   string

	feedOnce sync.Once
	feed     *Feed

	wakeOnce sync.Once // AdoptReady's listener
	wakeCh   chan struct{}
	wakeStop context.CancelFunc
	wakeDone chan struct{}
	enq      *enqueuer
	q        queries
	calls    atomic.Int64

	lostMu sync.Mutex
	lost   []int64 // adoptions whose reply was lost: their events to give back
	// adoptReplyLost, when set (tests), fails an adoption after its
	// commit, as a connection cut while the reply comes back does.
	adoptReplyLost func() error
}

// Option configures a [Backend].
type Option func(*settings)

type settings struct {
	prefix      string
	lockTimeout time.Duration
}

// WithLockTimeout sets how long a start that must change the schema (a
// new version's column or index) waits for a lock on a table before it
// gives up with an error (SQLSTATE 55P03, lock_not_available): a
// migration queued behind another replica's long transaction would make
// every other session's statements on the table wait behind it. A start
// whose schema is current takes no lock at all. Defaults to 5 seconds; it
// panics if d is negative.
func WithLockTimeout(d time.Duration) Option {
	if d < 0 {
		panic(fmt.Sprintf("postgres: WithLockTimeout(%v): negative", d))
	}
	return func(s *settings) { s.lockTimeout = d }
}

// WithPrefix sets the prefix of the tables, so that several streams can
// share a database. It must be a lowercase SQL identifier. Defaults to
// "intake_".
func WithPrefix(p string) Option { return func(s *settings) { s.prefix = p } }

var validPrefix = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}$`)

// New returns a backend on pool, creating its tables if they do not exist.
// The pool stays the caller's.
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Backend, error) {
	s := settings{prefix: "intake_", lockTimeout: 5 * time.Second}
	for _, o := range opts {
		o(&s)
	}
	if !validPrefix.MatchString(s.prefix) {
		return nil, fmt.Errorf("postgres: invalid table prefix %q", s.prefix)
	}
	b := &Backend{pool: pool, q: newQueries(s.prefix), prefix: s.prefix}
	b.lockID = newLockID()
	b.holder = strconv.FormatInt(int64(b.lockID), 10)
	if err := b.migrate(ctx, s.prefix, s.lockTimeout); err != nil {
		return nil, err
	}
	if err := b.takeLock(ctx); err != nil {
		return nil, err
	}
	b.lockStop, b.lockDone = make(chan struct{}), make(chan struct{})
	go b.keepLock()
	b.enq = newEnqueuer(b)
	return b, nil
}

// lockCheck is how often keepLock checks the lock's connection.
const lockCheck = time.Second

// keepLock checks every lockCheck that the connection holding the
// holder's lock lives, and when it died (a network fault, a restarted
// pooler, pg_terminate_backend) takes the lock again on a new one. While
// the lock is gone the others take this holder's events for a dead one's
// (and its transactional acks then fail, fenced); without this it would
// stay gone for the Backend's life, every event it enqueued adopted and
// handled twice.
func (b *Backend) keepLock() {
	defer close(b.lockDone)
	t := time.NewTicker(lockCheck)
	defer t.Stop()
	for {
		select {
		case <-b.lockStop:
			return
		case <-t.C:
		}
		b.lockMu.Lock()
		if b.lock != nil {
			ctx, cancel := context.WithTimeout(context.Background(), lockCheck)
			if _, err := b.lock.Exec(ctx, `SELECT 1`); err != nil {
				_ = b.lock.Close(ctx)
				b.lock = nil
			}
			cancel()
		}
		if b.lock == nil {
			select {
			case <-b.lockStop: // closed meanwhile: stay unlocked
			default:
				ctx, cancel := context.WithTimeout(context.Background(), lockCheck)
				_ = b.takeLock(ctx) // or again at the next check
				cancel()
			}
		}
		b.lockMu.Unlock()
	}
}

// Holder returns this Backend's holder id: what the rows of the events
// it holds say (the column holder), and the second key of its advisory
// lock (the first is 0x696e7461).
func (b *Backend) Holder() string { return b.holder }

// lockClass is the first key of every holder's advisory lock (two-key
// form); the second is the holder's id.
const lockClass = 0x696e7461 // "inta"

// takeLock takes the holder's session-level advisory lock on a
// connection of its own, taken out of the pool.
func (b *Backend) takeLock(ctx context.Context) error {
	c, err := b.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: holder lock: %w", err)
	}
	conn := c.Hijack()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, int32(lockClass), b.lockID); err != nil {
		_ = conn.Close(ctx)
		return fmt.Errorf("postgres: holder lock: %w", err)
	}
	b.lock = conn
	return nil
}

func newLockID() int32 {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return int32(binary.BigEndian.Uint32(r[:])&0x7fffffff) | 1 // positive, never 0
}

// Open connects to dsn and returns a backend that owns the pool: Close
// closes it.
func Open(ctx context.Context, dsn string, opts ...Option) (*Backend, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	b, err := New(ctx, pool, opts...)
	if err != nil {
		pool.Close()
		return nil, err
	}
	b.owned = true
	return b, nil
}

// Close ends the holder: it closes the connection that holds its lock, so
// that what it still holds is adopted by peers at once, and closes the
// pool if [Open] made it.
func (b *Backend) Close() error {
	b.enq.close()
	if b.feed != nil {
		b.feed.close()
	}
	b.stopAdoptListener()
	b.lockOnce.Do(func() {
		close(b.lockStop)
		<-b.lockDone
	})
	b.lockMu.Lock()
	var err error
	if b.lock != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = b.lock.Close(ctx)
		b.lock = nil
		// Its events are adoptable now: tell the other holders.
		b.notifyAdopt(ctx)
		cancel()
	}
	b.lockMu.Unlock()
	if b.owned {
		b.pool.Close()
	}
	if err != nil {
		return fmt.Errorf("postgres: close: %w", err)
	}
	return nil
}

// migrate brings the tables to this version's schema. A schema already
// current (the usual start, a rolling deploy's replicas) is seen with one
// read of the catalog and nothing else: no lock on a table, so another
// replica's open transaction neither stalls the start nor, through a lock
// request queued behind it, every other session. Otherwise schema.sql
// runs in one transaction, replicas one at a time, each statement waiting
// for a table's lock at most lockTimeout.
func (b *Backend) migrate(ctx context.Context, prefix string, lockTimeout time.Duration) error {
	var current bool
	if err := b.pool.QueryRow(ctx, b.q.schemaCurrent).Scan(&current); err != nil {
		return fmt.Errorf("postgres: check tables: %w", err)
	}
	if current {
		return nil
	}
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: create tables: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
	// Replicas starting together must not race on CREATE … IF NOT EXISTS.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, "intake-schema:"+prefix); err != nil {
		return fmt.Errorf("postgres: create tables: %w", err)
	}
	var cols, ours int
	if err := tx.QueryRow(ctx, b.q.checkSchema).Scan(&cols, &ours); err != nil {
		return fmt.Errorf("postgres: check tables: %w", err)
	}
	if cols > 0 && ours != 3 {
		return fmt.Errorf("postgres: table %skeys was made by an earlier version of this package; drop it or choose another prefix (WithPrefix)", prefix)
	}
	if lockTimeout > 0 {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", lockTimeout.Milliseconds())); err != nil {
			return fmt.Errorf("postgres: create tables: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, strings.ReplaceAll(schemaSQL, "{p}", prefix)); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" {
			return fmt.Errorf("postgres: create tables: another session holds a lock on a table of %q for longer than the lock timeout (%v; WithLockTimeout); start again once its transaction ends: %w", prefix, lockTimeout, err)
		}
		return fmt.Errorf("postgres: create tables: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: create tables: %w", err)
	}
	return nil
}

// hash is the row of a key: its SHA-256.
func hash(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

func hashes(keys []string) [][]byte {
	hs := make([][]byte, 0, len(keys))
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if !seen[k] { // a key twice in one statement would fail it
			seen[k] = true
			hs = append(hs, hash(k))
		}
	}
	return hs
}

const (
	statePending = 1
	stateDone    = 2
	stateDead    = 3
)

func micros(d time.Duration) int64 { return d.Microseconds() }

func validDuration(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("postgres: duration %v: %w", d, dedupe.ErrInvalidDuration)
	}
	return nil
}

// Claim implements [dedupe.Store].
func (b *Backend) Claim(ctx context.Context, key string, lease time.Duration) (dedupe.State, error) {
	if err := validDuration(lease); err != nil {
		return 0, err
	}
	return b.claim(ctx, b.q.claim, key, micros(lease), b.holder)
}

// Enqueue implements [dedupe.Queue]. It refuses nothing: every event is
// kept byte-exact.
func (b *Backend) Enqueue(ctx context.Context, key string, e event.Event, lease time.Duration) (dedupe.State, error) {
	if err := validDuration(lease); err != nil {
		return 0, err
	}
	return b.enq.enqueue(ctx, key, e, lease)
}

// EnqueueMany implements [dedupe.BatchQueue]: the events share one batch
// (a page of a poller in one statement), each answered as Enqueue would.
func (b *Backend) EnqueueMany(ctx context.Context, keys []string, events []event.Event, lease time.Duration) ([]dedupe.State, []error) {
	if err := validDuration(lease); err != nil {
		errs := make([]error, len(keys))
		for i := range errs {
			errs[i] = err
		}
		return make([]dedupe.State, len(keys)), errs
	}
	return b.enq.enqueueMany(ctx, keys, events, lease)
}

// claim runs a claiming statement: it answers 0 when it claimed the key,
// or the state of the row that stopped it.
func (b *Backend) claim(ctx context.Context, sql, key string, args ...any) (dedupe.State, error) {
	b.maybeCleanup(ctx)
	h := hash(key)
	args = append([]any{h}, args...)
	for range 3 {
		var st int16
		err := b.pool.QueryRow(ctx, sql, args...).Scan(&st)
		if errors.Is(err, pgx.ErrNoRows) {
			// A concurrent claim committed after this statement's snapshot:
			// read the row as it is now.
			err = b.pool.QueryRow(ctx, b.q.state, h).Scan(&st)
			if errors.Is(err, pgx.ErrNoRows) {
				continue // released meanwhile: claim again
			}
		}
		if err != nil {
			return 0, fmt.Errorf("postgres: claim: %w", err)
		}
		switch st {
		case 0:
			return dedupe.Claimed, nil
		case stateDone:
			return dedupe.Done, nil
		default:
			return dedupe.Pending, nil
		}
	}
	return 0, errors.New("postgres: claim: key keeps changing; try again")
}

// Commit implements [dedupe.Store].
func (b *Backend) Commit(ctx context.Context, key string, retain time.Duration) error {
	return b.CommitMany(ctx, []string{key}, retain)
}

// CommitMany implements [dedupe.Queue]: one statement for every key.
func (b *Backend) CommitMany(ctx context.Context, keys []string, retain time.Duration) error {
	if err := validDuration(retain); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	if _, err := b.pool.Exec(ctx, b.q.commit, hashes(keys), micros(retain)); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
	}
	return nil
}

// Release implements [dedupe.Store] and [dedupe.Queue].
func (b *Backend) Release(ctx context.Context, key string) error {
	if _, err := b.pool.Exec(ctx, b.q.release, hash(key)); err != nil {
		return fmt.Errorf("postgres: release: %w", err)
	}
	return nil
}

// Extend implements [dedupe.Queue]. Renewing (a positive lease) writes
// nothing: a holder keeps its queued events as long as its advisory lock,
// that is its process, lives, so rewriting every held row each interval
// (slow and lock-heavy with a large backlog) buys nothing. A lease of zero
// gives the events back, adoptable at once.
func (b *Backend) Extend(ctx context.Context, keys []string, lease time.Duration) error {
	if len(keys) == 0 || lease > 0 {
		return ctx.Err()
	}
	if _, err := b.pool.Exec(ctx, b.q.extend, hashes(keys), micros(max(lease, 0)), b.holder); err != nil {
		return fmt.Errorf("postgres: extend: %w", err)
	}
	b.notifyAdopt(ctx)
	return nil
}

var _ dedupe.Starter = (*Backend)(nil)

// Start implements [dedupe.Starter]: it marks this holder's queued
// events under keys as being delivered, so that a crash of this holder
// counts an attempt against them (and against no other it holds).
func (b *Backend) Start(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return ctx.Err()
	}
	if _, err := b.pool.Exec(ctx, b.q.start, hashes(keys), b.holder); err != nil {
		return fmt.Errorf("postgres: start: %w", err)
	}
	return nil
}

// Adopt implements [dedupe.Queue]. It also deletes a bounded batch of
// expired keys. A crashed holder's event counts an attempt only if that
// holder had started it ([Backend.Start]).
func (b *Backend) Adopt(ctx context.Context, n int, lease time.Duration) ([]dedupe.Stored, error) {
	if err := validDuration(lease); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	if err := b.giveBackLost(ctx); err != nil {
		return nil, err
	}
	if _, err := b.Cleanup(ctx, 1000); err != nil {
		return nil, err
	}
	token := mrand.Int64()
	out, err := b.adopt(ctx, n, lease, token)
	if err != nil {
		// The adoption may have committed and its reply been lost: what
		// it took is given back at the next call.
		b.lostMu.Lock()
		b.lost = append(b.lost, token)
		b.lostMu.Unlock()
	}
	return out, err
}

// giveBackLost gives back what the adoptions whose reply was lost took
// (their events are held by this holder, which never got them: no other
// holder would adopt them while it lives) and wakes the adopters.
func (b *Backend) giveBackLost(ctx context.Context) error {
	b.lostMu.Lock()
	lost := b.lost
	b.lostMu.Unlock()
	if len(lost) == 0 {
		return nil
	}
	if _, err := b.pool.Exec(ctx, b.q.unadopt, b.holder, lost); err != nil {
		return fmt.Errorf("postgres: give back a lost adoption: %w", err)
	}
	b.lostMu.Lock()
	b.lost = b.lost[len(lost):]
	b.lostMu.Unlock()
	b.notifyAdopt(ctx)
	return nil
}

// adopt runs one adoption, marking what it takes with token.
func (b *Backend) adopt(ctx context.Context, n int, lease time.Duration, token int64) ([]dedupe.Stored, error) {
	rows, err := b.pool.Query(ctx, b.q.adopt, b.holder, micros(lease), n, int32(lockClass), token)
	if err != nil {
		return nil, fmt.Errorf("postgres: adopt: %w", err)
	}
	type row struct {
		seq int64
		it  dedupe.Stored
	}
	var got []row
	for rows.Next() {
		var (
			r        row
			key, enc []byte
			attempts int32
			done     [][]byte
		)
		if err := rows.Scan(&key, &r.seq, &enc, &attempts, &done, &r.it.Crashed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: adopt: %w", err)
		}
		if err := r.it.Event.UnmarshalBinary(enc); err != nil {
			rows.Close()
			return nil, fmt.Errorf("postgres: adopt %q: %w", key, err)
		}
		r.it.Key, r.it.Attempts = string(key), int(attempts)
		for _, sub := range done {
			r.it.Done = append(r.it.Done, string(sub))
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: adopt: %w", err)
	}
	if b.adoptReplyLost != nil {
		if err := b.adoptReplyLost(); err != nil {
			return nil, fmt.Errorf("postgres: adopt: %w", err)
		}
	}
	slices.SortFunc(got, func(a, b row) int { return int(a.seq - b.seq) })
	out := make([]dedupe.Stored, len(got))
	for i, r := range got {
		out[i] = r.it
	}
	return out, nil
}

// Cleanup deletes up to limit keys whose lease or retention has expired
// and that hold no queued event, oldest expiry first, through the index on
// expiry. Adopt calls it, and so does every 1024th claim; call it yourself
// if you use the backend as a store only and claim rarely. It also deletes
// up to limit expired versions (Backend.SaveVersion).
func (b *Backend) Cleanup(ctx context.Context, limit int) (int64, error) {
	tag, err := b.pool.Exec(ctx, b.q.cleanup, limit)
	if err != nil {
		return 0, fmt.Errorf("postgres: cleanup: %w", err)
	}
	vtag, err := b.pool.Exec(ctx, b.q.cleanVersions, limit)
	if err != nil {
		return tag.RowsAffected(), fmt.Errorf("postgres: cleanup versions: %w", err)
	}
	return tag.RowsAffected() + vtag.RowsAffected(), nil
}

func (b *Backend) maybeCleanup(ctx context.Context) {
	if b.calls.Add(1)%1024 == 0 {
		_, _ = b.Cleanup(ctx, 256) // best effort: the next call retries
	}
}

// Checkpoint returns the poller checkpoint kept in the backend's database.
func (b *Backend) Checkpoint() *Checkpoint { return &Checkpoint{b: b} }

// Checkpoint is a [poller.Checkpoint] in PostgreSQL.
type Checkpoint struct{ b *Backend }

// Load implements [poller.Checkpoint].
func (c *Checkpoint) Load(ctx context.Context, name string) (string, error) {
	var cursor string
	err := c.b.pool.QueryRow(ctx, c.b.q.loadCheckpoint, name).Scan(&cursor)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("postgres: load checkpoint: %w", err)
	}
	return cursor, nil
}

// Save implements [poller.Checkpoint].
func (c *Checkpoint) Save(ctx context.Context, name, cursor string) error {
	if _, err := c.b.pool.Exec(ctx, c.b.q.saveCheckpoint, name, cursor); err != nil {
		return fmt.Errorf("postgres: save checkpoint: %w", err)
	}
	return nil
}

// Lease returns the leader lease of this backend's holder.
func (b *Backend) Lease() *Lease { return &Lease{b: b} }

// Lease is a [poller.Lease] in PostgreSQL: a row per name with its holder
// and expiry.
type Lease struct{ b *Backend }

// Acquire implements [poller.Lease].
func (l *Lease) Acquire(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	return l.run(ctx, l.b.q.acquire, name, ttl)
}

// Renew implements [poller.Lease].
func (l *Lease) Renew(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	return l.run(ctx, l.b.q.renew, name, ttl)
}

func (l *Lease) run(ctx context.Context, sql, name string, ttl time.Duration) (bool, error) {
	var one int
	err := l.b.pool.QueryRow(ctx, sql, name, l.b.holder, micros(ttl)).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres: lease: %w", err)
	}
	return true, nil
}

// Release implements [poller.Lease].
func (l *Lease) Release(ctx context.Context, name string) error {
	if _, err := l.b.pool.Exec(ctx, l.b.q.releaseLease, name, l.b.holder); err != nil {
		return fmt.Errorf("postgres: release lease: %w", err)
	}
	return nil
}

// Ping reports whether the database answers; the stream's health check
// calls it (see intake.Pinger).
func (b *Backend) Ping(ctx context.Context) error {
	if err := b.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Bury implements [dedupe.Queue]: the row becomes dead, with its event,
// its attempts and f, until retain ends.
func (b *Backend) Bury(ctx context.Context, key string, f dedupe.Failure, retain time.Duration) error {
	if err := validDuration(retain); err != nil {
		return err
	}
	fj, _ := json.Marshal(f)
	if _, err := b.pool.Exec(ctx, b.q.bury, hash(key), micros(retain), int32(f.Attempts), fj); err != nil {
		return fmt.Errorf("postgres: bury: %w", err)
	}
	return nil
}

// List implements [dedupe.Inspector].
func (b *Backend) List(ctx context.Context, f dedupe.Filter) ([]dedupe.Record, error) {
	state := int16(0)
	switch f.State {
	case dedupe.Queued:
		state = statePending
	case dedupe.Dead:
		state = stateDead
	}
	limit := f.Max()
	rows, err := b.pool.Query(ctx, b.q.list, state, nullBytes(f.Source), nullBytes(f.Type), f.After, limit)
	if err != nil {
		return nil, fmt.Errorf("postgres: list: %w", err)
	}
	defer rows.Close()
	var out []dedupe.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list: %w", err)
	}
	return out, nil
}

// Get implements [dedupe.Inspector].
func (b *Backend) Get(ctx context.Context, key string) (dedupe.Record, error) {
	r, err := scanRecord(b.pool.QueryRow(ctx, b.q.get, hash(key)))
	if errors.Is(err, pgx.ErrNoRows) {
		return dedupe.Record{}, fmt.Errorf("postgres: %q: %w", key, dedupe.ErrNotFound)
	}
	if err != nil {
		return dedupe.Record{}, fmt.Errorf("postgres: get: %w", err)
	}
	return r, nil
}

// Replay implements [dedupe.Inspector]: a dead row becomes pending with
// no holder, adoptable at once, its attempts reset.
func (b *Backend) Replay(ctx context.Context, key string) error {
	tag, err := b.pool.Exec(ctx, b.q.replay, hash(key))
	if err != nil {
		return fmt.Errorf("postgres: replay: %w", err)
	}
	if tag.RowsAffected() > 0 {
		b.notifyAdopt(ctx)
	}
	if tag.RowsAffected() == 0 {
		if _, err := b.Get(ctx, key); err != nil {
			return err // not there; if it is, it is queued: nothing to do
		}
	}
	return nil
}

// DoneUntil implements [dedupe.DoneLookup].
func (b *Backend) DoneUntil(ctx context.Context, key string) (time.Time, bool, error) {
	var until time.Time
	err := b.pool.QueryRow(ctx, b.q.doneUntil, hash(key)).Scan(&until)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("postgres: done: %w", err)
	}
	return until, true, nil
}

// ReplayMany implements [dedupe.BatchInspector]: one statement.
func (b *Backend) ReplayMany(ctx context.Context, keys []string) (int, error) {
	tag, err := b.pool.Exec(ctx, b.q.replayMany, hashes(keys))
	if err != nil {
		return 0, fmt.Errorf("postgres: replay: %w", err)
	}
	if tag.RowsAffected() > 0 {
		b.notifyAdopt(ctx)
	}
	return int(tag.RowsAffected()), nil
}

// DiscardMany implements [dedupe.BatchInspector]: one statement.
func (b *Backend) DiscardMany(ctx context.Context, keys []string) (int, error) {
	tag, err := b.pool.Exec(ctx, b.q.discardMany, hashes(keys))
	if err != nil {
		return 0, fmt.Errorf("postgres: discard: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Discard implements [dedupe.Inspector].
func (b *Backend) Discard(ctx context.Context, key string) error {
	tag, err := b.pool.Exec(ctx, b.q.discard, hash(key))
	if err != nil {
		return fmt.Errorf("postgres: discard: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: %q: %w", key, dedupe.ErrNotFound)
	}
	return nil
}

func scanRecord(row pgx.Row) (dedupe.Record, error) {
	var (
		r        dedupe.Record
		key, enc []byte
		failure  []byte
		state    int16
		attempts int32
	)
	if err := row.Scan(&key, &r.Seq, &state, &attempts, &failure, &enc); err != nil {
		return r, err
	}
	return dedupe.DecodeRecord(key, r.Seq, state == stateDead, int(attempts), failure, enc)
}

func nullBytes(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}
