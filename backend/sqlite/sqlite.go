// Package sqlite keeps intake's idempotency keys, durable queue, poller
// checkpoints and lease in one SQLite file (pure Go, no cgo), the embedded
// durable choice for a single node: what a stream acknowledged survives
// kill -9 and is delivered after a restart.
//
//	db, err := sqlite.Open("intake.db")
//	defer db.Close()
//	stream := intake.New(intake.WithQueue(db))
//
// Writes go through one goroutine that commits them in groups (group
// commit): concurrent claims, enqueues and acks share a transaction and an
// fsync, and none is answered before its transaction is durable; if one
// write of a group fails, the others are retried without it. The file is
// in WAL mode. Keys are stored as their bytes and queued events in the
// byte-exact encoding of [event.Event.MarshalBinary]: nothing a provider
// sends is refused or altered. Tables are created on first use with a
// prefix (default "intake_"); the SQL is in schema.sql.
package sqlite

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the pure-Go driver, registered as "sqlite"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

//go:embed schema.sql
var schemaSQL string

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("sqlite: backend closed")

// Backend stores intake's state in SQLite. Create it with [Open] or [New]
// and Close it when done: it runs one writer goroutine. It is safe for
// concurrent use. Each Backend is one holder of claims; open one per
// stream.
type Backend struct {
	db     *sql.DB
	owned  bool
	holder string
	lock   *holderLock // nil for an in-memory database or where flock is missing

	feedOnce sync.Once
	feed     *Feed
	t        tables
	now      func() time.Time

	conn  *sql.Conn // the writer's connection
	stmts stmts     // prepared on conn

	ops      chan *op
	stop     chan struct{}
	stopped  chan struct{}
	closeMu  sync.RWMutex
	closed   bool
	maxBatch int
	seq      int64 // last queue sequence number; the writer's alone
}

// Option configures a [Backend].
type Option func(*settings)

type settings struct {
	prefix   string
	sync     string
	maxBatch int
}

// WithPrefix sets the prefix of the table names. Defaults to "intake_".
func WithPrefix(p string) Option { return func(s *settings) { s.prefix = p } }

// WithSynchronous sets SQLite's synchronous pragma for [Open]: "FULL" (the
// default) survives power loss; "NORMAL" survives a process crash only,
// and is faster.
func WithSynchronous(mode string) Option { return func(s *settings) { s.sync = mode } }

// WithMaxBatch bounds how many writes share one transaction. Defaults to
// 256.
func WithMaxBatch(n int) Option { return func(s *settings) { s.maxBatch = n } }

var (
	validPrefix = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}$`)
	validSync   = regexp.MustCompile(`^(?i:OFF|NORMAL|FULL|EXTRA)$`)
)

// Open opens (creating if needed) the SQLite file at path in WAL mode and
// returns a backend that owns it. The path must name a file: "" and
// ":memory:" are refused (an error matching fs.ErrInvalid), since SQLite
// would give each connection of the pool a database of its own, and a
// directory is refused with one matching syscall.EISDIR.
func Open(path string, opts ...Option) (*Backend, error) {
	s := settings{sync: "FULL"}
	for _, o := range opts {
		o(&s)
	}
	if !validSync.MatchString(s.sync) {
		return nil, fmt.Errorf("sqlite: invalid synchronous mode %q", s.sync)
	}
	if path == "" || path == ":memory:" {
		// SQLite gives each connection of the pool a database of its own.
		return nil, fmt.Errorf("sqlite: %w (each connection of the pool would have a database of its own): name a file, in tests one in t.TempDir()",
			&fs.PathError{Op: "open", Path: path, Err: fs.ErrInvalid})
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() { // SQLite would say "out of memory"
		return nil, fmt.Errorf("sqlite: %w", &fs.PathError{Op: "open", Path: path, Err: syscall.EISDIR})
	}
	// IMMEDIATE transactions take the write lock at BEGIN, so that two
	// writers on one file wait for each other (busy_timeout) instead of
	// failing when a read lock would have to be upgraded.
	dsn := "file:" + path + "?_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(" + s.sync + ")"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	b, err := New(db, opts...)
	if err != nil {
		db.Close()
		return nil, err
	}
	b.owned = true
	return b, nil
}

// New returns a backend on db, an SQLite database opened with the
// "sqlite" driver of modernc.org/sqlite, creating its tables if needed.
// db stays the caller's, but the backend must be Closed.
func New(db *sql.DB, opts ...Option) (*Backend, error) {
	s := settings{prefix: "intake_", maxBatch: 256}
	for _, o := range opts {
		o(&s)
	}
	if !validPrefix.MatchString(s.prefix) {
		return nil, fmt.Errorf("sqlite: invalid table prefix %q", s.prefix)
	}
	var cols, ours int
	if err := db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE name IN ('event', 'attempts')) FROM pragma_table_info(?)`, s.prefix+"keys").Scan(&cols, &ours); err != nil {
		return nil, fmt.Errorf("sqlite: check tables: %w", err)
	}
	if cols > 0 && ours != 2 {
		return nil, fmt.Errorf("sqlite: table %skeys was made by an earlier version of this package; drop it or choose another prefix (WithPrefix)", s.prefix)
	}
	if _, err := db.Exec(strings.ReplaceAll(schemaSQL, "{p}", s.prefix)); err != nil {
		return nil, fmt.Errorf("sqlite: create tables: %w", err)
	}
	for _, c := range []struct{ name, def string }{{"done", "TEXT"}, {"started", "INTEGER NOT NULL DEFAULT 0"}, {"ordkey", "BLOB"}} {
		if err := addColumn(db, s.prefix+"keys", c.name, c.def); err != nil {
			return nil, err
		}
	}
	// The pending events of an order key in stored order (Backend.Heads);
	// made here, after the column a table of an earlier version lacks.
	if _, err := db.Exec(`CREATE INDEX IF NOT EXISTS ` + s.prefix + `keys_order ON ` + s.prefix + `keys (ordkey, seq) WHERE state = 1 AND ordkey IS NOT NULL`); err != nil {
		return nil, fmt.Errorf("sqlite: create tables: %w", err)
	}
	b := &Backend{
		db:       db,
		holder:   newHolder(),
		t:        tables{keys: s.prefix + "keys", checkpoints: s.prefix + "checkpoints", leases: s.prefix + "leases", connections: s.prefix + "connections", budgets: s.prefix + "budgets", versions: s.prefix + "versions", seq: s.prefix + "seq"},
		now:      time.Now,
		ops:      make(chan *op, 1024),
		stop:     make(chan struct{}),
		stopped:  make(chan struct{}),
		maxBatch: max(1, s.maxBatch),
	}
	if err := db.QueryRow(`SELECT max(COALESCE((SELECT MAX(seq) FROM ` + b.t.keys + `), 0), COALESCE((SELECT seq FROM ` + b.t.seq + `), 0))`).Scan(&b.seq); err != nil {
		return nil, fmt.Errorf("sqlite: read queue: %w", err)
	}
	var file string
	if err := db.QueryRow(`SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file); err == nil && file != "" {
		b.lock, _ = openHolderLock(file, b.holder) // without it, adoption waits for the lease
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	if b.stmts, err = prepare(conn, b.t.keys); err != nil {
		conn.Close()
		return nil, err
	}
	b.conn = conn
	go b.write()
	return b, nil
}

// addColumn adds a column of a later version (done: transactional acks;
// started: deliveries begun) to a table made before it existed (SQLite
// has no ADD COLUMN IF NOT EXISTS).
func addColumn(db *sql.DB, keys, name, def string) error {
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, keys, name).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: check tables: %w", err)
	}
	if n > 0 {
		return nil
	}
	if _, err := db.Exec(`ALTER TABLE ` + keys + ` ADD COLUMN ` + name + ` ` + def); err != nil && !strings.Contains(err.Error(), "duplicate column") {
		return fmt.Errorf("sqlite: add column %s: %w", name, err)
	}
	return nil
}

// stmts are the writer's hot statements, prepared once on its connection.
type stmts struct {
	claim, state, release, extend *sql.Stmt
}

func prepare(conn *sql.Conn, keys string) (stmts, error) {
	var st stmts
	for _, q := range []struct {
		to  **sql.Stmt
		sql string
	}{
		// Claim in one statement: insert, or take over an expired row.
		// RETURNING yields a row only when the key was claimed.
		{&st.claim, `INSERT INTO ` + keys + ` AS k (key, state, expires_at, holder, seq, event, source, type, ordkey)
			VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
			ON CONFLICT (key) DO UPDATE SET state = 1, expires_at = excluded.expires_at, holder = excluded.holder,
				seq = excluded.seq, event = excluded.event, source = excluded.source, type = excluded.type,
				attempts = 0, failure = NULL, started = 0, ordkey = excluded.ordkey
			WHERE (k.expires_at <= ?9 AND (k.seq IS NULL OR ?4 IS NULL)) OR k.state = 3
			RETURNING 0`},
		{&st.state, `SELECT state FROM ` + keys + ` WHERE key = ?`},
		{&st.release, `DELETE FROM ` + keys + ` WHERE key = ? AND state = 1`},
		{&st.extend, `UPDATE ` + keys + ` SET expires_at = ?1, holder = CASE WHEN ?4 = 0 THEN NULL ELSE holder END
			WHERE key = ?2 AND holder = ?3 AND state = 1`},
	} {
		s, err := conn.PrepareContext(context.Background(), q.sql)
		if err != nil {
			return st, fmt.Errorf("sqlite: prepare: %w", err)
		}
		*q.to = s
	}
	return st, nil
}

// Close stops the writer, after it has committed what it was given, and
// closes the database if [Open] opened it.
func (b *Backend) Close() error {
	b.closeMu.Lock()
	if b.closed {
		b.closeMu.Unlock()
		return nil
	}
	b.closed = true
	b.closeMu.Unlock()
	close(b.stop)
	<-b.stopped
	for _, st := range []*sql.Stmt{b.stmts.claim, b.stmts.state, b.stmts.release, b.stmts.extend} {
		st.Close()
	}
	b.conn.Close()
	if b.lock != nil {
		_ = b.lock.close() // after the writer: a successor adopts once all is written
	}
	if b.owned {
		return b.db.Close()
	}
	return nil
}

type tables struct{ keys, checkpoints, leases, connections, budgets, versions, seq string }

func newHolder() string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// op is one write: fn runs inside the group's transaction, under a
// savepoint of its own; done receives its error once the group committed.
//
// Claims and commits, the writes of every event, are not closures: runs of
// them are written with one multi-row statement each, since the driver
// parses every statement it executes.
type op struct {
	fn     func(tx *sql.Tx, now int64) error
	claim  *claimArgs
	commit *commitArgs
	// release is a key to release when isRelease is set: consecutive
	// releases in a batch are one DELETE, as consecutive commits are one
	// INSERT.
	release   string
	isRelease bool
	state     dedupe.State // a claim's answer
	done      chan error
}

type claimArgs struct {
	key   string
	lease time.Duration
	e     *event.Event // nil for a claim of the store alone
}

type commitArgs struct {
	keys   []string
	retain time.Duration
}

// exec hands fn to the writer and waits until its transaction committed.
func (b *Backend) exec(ctx context.Context, fn func(tx *sql.Tx, now int64) error) error {
	return b.submit(ctx, &op{fn: fn})
}

// submit hands o to the writer and waits until its transaction committed.
func (b *Backend) submit(ctx context.Context, o *op) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	o.done = make(chan error, 1)
	b.closeMu.RLock()
	if b.closed {
		b.closeMu.RUnlock()
		return ErrClosed
	}
	select {
	case b.ops <- o:
		b.closeMu.RUnlock()
	case <-ctx.Done():
		b.closeMu.RUnlock()
		return ctx.Err()
	}
	// Once handed over, the write happens: wait for it even if ctx ends,
	// so that the caller never believes a stored event was not stored.
	return <-o.done
}

// write is the writer goroutine: it takes what is waiting (up to
// maxBatch), runs it in one transaction, commits, and answers.
func (b *Backend) write() {
	defer close(b.stopped)
	batch := make([]*op, 0, b.maxBatch)
	for {
		batch = batch[:0]
		select {
		case o := <-b.ops:
			batch = append(batch, o)
		case <-b.stop:
			// Drain what was handed over before Close.
			for {
				select {
				case o := <-b.ops:
					batch = append(batch, o)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				b.commit(batch)
			}
			return
		}
	fill:
		for len(batch) < b.maxBatch {
			select {
			case o := <-b.ops:
				batch = append(batch, o)
			default:
				break fill
			}
		}
		b.commit(batch)
	}
}

// commit runs a group of writes in one transaction and answers them once
// it is durable. If any write fails, the group is rolled back and each
// write runs again in a transaction of its own, so that one bad write
// fails alone. (Savepoints per write would do the same at a high cost per
// write; failures are rare.)
func (b *Backend) commit(batch []*op) {
	if len(batch) > 1 {
		if err := b.runTx(batch); err == nil {
			for _, o := range batch {
				o.done <- nil
			}
			return
		}
	}
	for _, o := range batch {
		o.done <- b.runTx([]*op{o})
	}
}

func (b *Backend) runTx(ops []*op) error {
	tx, err := b.conn.BeginTx(context.Background(), nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	now := b.now().UnixNano()
	seq := b.seq
	for i := 0; i < len(ops); {
		j := i + 1
		var err error
		switch {
		case ops[i].claim != nil:
			for j < len(ops) && ops[j].claim != nil {
				j++
			}
			err = b.claimMany(tx, now, ops[i:j])
		case ops[i].commit != nil:
			for j < len(ops) && ops[j].commit != nil {
				j++
			}
			err = b.commitMany(tx, now, ops[i:j])
		case ops[i].isRelease:
			for j < len(ops) && ops[j].isRelease {
				j++
			}
			err = b.releaseMany(tx, ops[i:j])
		default:
			err = ops[i].fn(tx, now)
		}
		if err != nil {
			_ = tx.Rollback()
			b.seq = seq
			return err
		}
		i = j
	}
	if b.seq != seq {
		// The last seq drawn, kept so that a restart never draws a seq
		// again (a committed key's row no longer holds its seq).
		if _, err := tx.Exec(`INSERT INTO `+b.t.seq+` (id, seq) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq`, b.seq); err != nil {
			_ = tx.Rollback()
			b.seq = seq
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		b.seq = seq
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

const (
	statePending = 1
	stateDone    = 2
)

func validDuration(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("sqlite: duration %v: %w", d, dedupe.ErrInvalidDuration)
	}
	return nil
}

// claim claims key in tx and, when e is not nil, stores it.
func (b *Backend) claim(tx *sql.Tx, now int64, key string, lease time.Duration, e *event.Event) (dedupe.State, error) {
	args := append(b.claimValues(now, &claimArgs{key: key, lease: lease, e: e}), now)
	var zero int
	err := tx.Stmt(b.stmts.claim).QueryRow(args...).Scan(&zero)
	if err == nil {
		return dedupe.Claimed, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, err
	}
	// The key is held and not expired (writes are serialised: it cannot
	// change before this transaction ends).
	var st int
	if err := tx.Stmt(b.stmts.state).QueryRow([]byte(key)).Scan(&st); err != nil {
		return 0, err
	}
	if st == stateDone {
		return dedupe.Done, nil
	}
	return dedupe.Pending, nil
}

// Claim implements [dedupe.Store].
func (b *Backend) Claim(ctx context.Context, key string, lease time.Duration) (dedupe.State, error) {
	return b.claimOp(ctx, key, lease, nil)
}

// Enqueue implements [dedupe.Queue]. It refuses nothing: every event is
// kept byte-exact.
func (b *Backend) Enqueue(ctx context.Context, key string, e event.Event, lease time.Duration) (dedupe.State, error) {
	return b.claimOp(ctx, key, lease, &e)
}

func (b *Backend) claimOp(ctx context.Context, key string, lease time.Duration, e *event.Event) (dedupe.State, error) {
	if err := validDuration(lease); err != nil {
		return 0, err
	}
	o := &op{claim: &claimArgs{key: key, lease: lease, e: e}}
	if err := b.submit(ctx, o); err != nil {
		return 0, fmt.Errorf("sqlite: claim: %w", err)
	}
	return o.state, nil
}

// claimMany claims a run of keys: one INSERT OR IGNORE for all of them,
// whose RETURNING names the keys it inserted; the few that already
// existed (duplicates, expired keys) are claimed one by one.
func (b *Backend) claimMany(tx *sql.Tx, now int64, ops []*op) error {
	var q strings.Builder
	q.WriteString(`INSERT OR IGNORE INTO ` + b.t.keys +
		` (key, state, expires_at, holder, seq, event, source, type, ordkey) VALUES `)
	args := make([]any, 0, 8*len(ops))
	for i, o := range ops {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(`(?,1,?,?,?,?,?,?,?)`)
		args = append(args, b.claimValues(now, o.claim)...)
	}
	q.WriteString(` RETURNING key`)
	rows, err := tx.Query(q.String(), args...)
	if err != nil {
		return err
	}
	inserted := make(map[string]bool, len(ops))
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return err
		}
		inserted[string(k)] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	for _, o := range ops {
		if inserted[o.claim.key] {
			o.state = dedupe.Claimed
			delete(inserted, o.claim.key) // a second claim of it in this run is a duplicate
			continue
		}
		if o.state, err = b.claim(tx, now, o.claim.key, o.claim.lease, o.claim.e); err != nil {
			return err
		}
	}
	return nil
}

// claimValues are the 8 values of a claim's row after state.
func (b *Backend) claimValues(now int64, c *claimArgs) []any {
	if c.e == nil {
		return []any{[]byte(c.key), now + int64(c.lease), b.holder, nil, nil, nil, nil, nil}
	}
	enc, _ := c.e.MarshalBinary() // never fails
	b.seq++
	var ordkey any // NULL: unordered
	if k := c.e.Meta[event.MetaOrder]; k != "" {
		ordkey = []byte(k)
	}
	return []any{[]byte(c.key), now + int64(c.lease), b.holder, b.seq, enc, []byte(c.e.Source), []byte(c.e.Type), ordkey}
}

// commitMany marks a run of keys done, with one statement for up to 400
// keys (SQLite's limit on variables is 32,766).
func (b *Backend) commitMany(tx *sql.Tx, now int64, ops []*op) error {
	var keys [][]byte
	var retains []int64
	for _, o := range ops {
		for _, k := range o.commit.keys {
			keys = append(keys, []byte(k))
			retains = append(retains, now+int64(o.commit.retain))
		}
	}
	for len(keys) > 0 {
		n := min(len(keys), 400)
		var q strings.Builder
		q.WriteString(`INSERT OR REPLACE INTO ` + b.t.keys + ` (key, state, expires_at) VALUES `)
		args := make([]any, 0, 2*n)
		for i := range n {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString(`(?,2,?)`)
			args = append(args, keys[i], retains[i])
		}
		if _, err := tx.Exec(q.String(), args...); err != nil {
			return err
		}
		keys, retains = keys[n:], retains[n:]
	}
	return nil
}

// Commit implements [dedupe.Store].
func (b *Backend) Commit(ctx context.Context, key string, retain time.Duration) error {
	return b.CommitMany(ctx, []string{key}, retain)
}

// CommitMany implements [dedupe.Queue]: the keys are written with one
// statement, in one group commit with what else is waiting.
func (b *Backend) CommitMany(ctx context.Context, keys []string, retain time.Duration) error {
	if err := validDuration(retain); err != nil {
		return err
	}
	if len(keys) == 0 {
		return nil
	}
	if err := b.submit(ctx, &op{commit: &commitArgs{keys: keys, retain: retain}}); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	return nil
}

// Release implements [dedupe.Store] and [dedupe.Queue]: releases waiting
// together are one statement, in one group commit with what else waits.
func (b *Backend) Release(ctx context.Context, key string) error {
	if err := b.submit(ctx, &op{release: key, isRelease: true}); err != nil {
		return fmt.Errorf("sqlite: release: %w", err)
	}
	return nil
}

// releaseMany deletes the pending keys of ops, up to 400 a statement.
func (b *Backend) releaseMany(tx *sql.Tx, ops []*op) error {
	if len(ops) == 1 {
		_, err := tx.Stmt(b.stmts.release).Exec([]byte(ops[0].release))
		return err
	}
	for len(ops) > 0 {
		n := min(len(ops), 400)
		var q strings.Builder
		q.WriteString(`DELETE FROM ` + b.t.keys + ` WHERE state = 1 AND key IN (`)
		args := make([]any, 0, n)
		for i := range n {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteByte('?')
			args = append(args, []byte(ops[i].release))
		}
		q.WriteByte(')')
		if _, err := tx.Exec(q.String(), args...); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}

// Extend implements [dedupe.Queue].
func (b *Backend) Extend(ctx context.Context, keys []string, lease time.Duration) error {
	if len(keys) == 0 {
		return nil
	}
	err := b.exec(ctx, func(tx *sql.Tx, now int64) error {
		stmt := tx.Stmt(b.stmts.extend)
		for _, k := range keys {
			if _, err := stmt.Exec(now+int64(max(lease, 0)), []byte(k), b.holder, int64(max(lease, 0))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: extend: %w", err)
	}
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
	err := b.exec(ctx, func(tx *sql.Tx, _ int64) error {
		for _, k := range keys {
			if _, err := tx.Exec(`UPDATE `+b.t.keys+` SET started = 1 WHERE key = ? AND holder = ? AND state = 1 AND seq IS NOT NULL AND started = 0`,
				[]byte(k), b.holder); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: start: %w", err)
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
	var out []dedupe.Stored
	err := b.exec(ctx, func(tx *sql.Tx, now int64) error {
		out = out[:0]
		if err := b.cleanup(tx, now, 1000); err != nil {
			return err
		}
		// Adoptable: given back (holder NULL), held by a holder whose
		// process is gone (its holder lock says so), or a claim that
		// expired. Each is read in seq order through keys_held, at most n
		// of each kind, so that a batch costs what it takes however large
		// the backlog.
		cands, err := b.adoptable(tx, now, n)
		if err != nil {
			return err
		}
		var keys [][]byte
		for _, c := range cands {
			it := dedupe.Stored{Key: string(c.key), Attempts: c.attempts, Done: decodeDone(c.done.String), Crashed: c.crashed}
			if err := it.Event.UnmarshalBinary(c.enc); err != nil {
				return fmt.Errorf("event of %q: %w", c.key, err)
			}
			if c.crashed && c.started {
				it.Attempts++ // its holder died delivering it
			}
			keys = append(keys, c.key)
			out = append(out, it)
		}
		for i, k := range keys {
			if _, err := tx.Exec(`UPDATE `+b.t.keys+` SET holder = ?, expires_at = ?, attempts = ?, started = 0 WHERE key = ?`,
				b.holder, now+int64(lease), out[i].Attempts, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: adopt: %w", err)
	}
	return out, nil
}

// cleanup deletes up to limit expired keys that hold no queued event,
// through the index on expiry, and up to limit expired versions.
func (b *Backend) cleanup(tx *sql.Tx, now int64, limit int) error {
	_, err := tx.Exec(`DELETE FROM `+b.t.keys+` WHERE key IN (
		SELECT key FROM `+b.t.keys+` WHERE expires_at <= ? AND (seq IS NULL OR state = 3) ORDER BY expires_at LIMIT ?)`, now, limit)
	if err == nil {
		_, err = tx.Exec(`DELETE FROM `+b.t.versions+` WHERE rowid IN (
			SELECT rowid FROM `+b.t.versions+` WHERE expires_at <= ? LIMIT ?)`, now, limit)
	}
	return err
}

// Checkpoint returns the poller checkpoint kept in the backend's file.
func (b *Backend) Checkpoint() *Checkpoint { return &Checkpoint{b: b} }

// Checkpoint is a [poller.Checkpoint] in SQLite.
type Checkpoint struct{ b *Backend }

// Load implements [poller.Checkpoint].
func (c *Checkpoint) Load(ctx context.Context, name string) (string, error) {
	var cursor string
	err := c.b.db.QueryRowContext(ctx, `SELECT cursor FROM `+c.b.t.checkpoints+` WHERE name = ?`, name).Scan(&cursor)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sqlite: load checkpoint: %w", err)
	}
	return cursor, nil
}

// Save implements [poller.Checkpoint].
func (c *Checkpoint) Save(ctx context.Context, name, cursor string) error {
	err := c.b.exec(ctx, func(tx *sql.Tx, now int64) error {
		_, err := tx.Exec(`INSERT OR REPLACE INTO `+c.b.t.checkpoints+` (name, cursor, updated_at) VALUES (?, ?, ?)`, name, cursor, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: save checkpoint: %w", err)
	}
	return nil
}

// Lease returns the leader lease of this backend's holder. SQLite serves
// one node: the lease elects among pollers sharing the file.
func (b *Backend) Lease() *Lease { return &Lease{b: b} }

// Lease is a [poller.Lease] in SQLite.
type Lease struct{ b *Backend }

// Acquire implements [poller.Lease].
func (l *Lease) Acquire(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	return l.run(ctx, name, ttl, true)
}

// Renew implements [poller.Lease].
func (l *Lease) Renew(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	return l.run(ctx, name, ttl, false)
}

func (l *Lease) run(ctx context.Context, name string, ttl time.Duration, acquire bool) (bool, error) {
	var ok bool
	err := l.b.exec(ctx, func(tx *sql.Tx, now int64) error {
		var holder string
		var exp int64
		err := tx.QueryRow(`SELECT holder, expires_at FROM `+l.b.t.leases+` WHERE name = ?`, name).Scan(&holder, &exp)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if !acquire {
				return nil
			}
		case err != nil:
			return err
		case holder == l.b.holder && exp > now:
		case holder == l.b.holder && acquire, exp <= now && acquire:
		default:
			return nil
		}
		_, err = tx.Exec(`INSERT OR REPLACE INTO `+l.b.t.leases+` (name, holder, expires_at) VALUES (?, ?, ?)`, name, l.b.holder, now+int64(ttl))
		ok = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("sqlite: lease: %w", err)
	}
	return ok, nil
}

// Release implements [poller.Lease].
func (l *Lease) Release(ctx context.Context, name string) error {
	err := l.b.exec(ctx, func(tx *sql.Tx, now int64) error {
		_, err := tx.Exec(`DELETE FROM `+l.b.t.leases+` WHERE name = ? AND holder = ?`, name, l.b.holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: release lease: %w", err)
	}
	return nil
}

// CommittedKeys returns every key marked done, for inspection and tests.
func (b *Backend) CommittedKeys(ctx context.Context) ([]string, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT key FROM `+b.t.keys+` WHERE state = 2`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
		keys = append(keys, string(k))
	}
	return keys, rows.Err()
}

// Ping reports whether the backend is open and its database answers; the
// stream's health check calls it (see intake.Pinger).
func (b *Backend) Ping(ctx context.Context) error {
	b.closeMu.RLock()
	closed := b.closed
	b.closeMu.RUnlock()
	if closed {
		return ErrClosed
	}
	var one int
	if err := b.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

const stateDead = 3

// Bury implements [dedupe.Queue]: the row becomes dead, with its event,
// its attempts and f, until retain ends.
func (b *Backend) Bury(ctx context.Context, key string, f dedupe.Failure, retain time.Duration) error {
	if err := validDuration(retain); err != nil {
		return err
	}
	fj, _ := json.Marshal(f)
	err := b.exec(ctx, func(tx *sql.Tx, now int64) error {
		_, err := tx.Exec(`UPDATE `+b.t.keys+` SET state = 3, expires_at = ?, holder = NULL, attempts = ?, failure = ?
			WHERE key = ? AND seq IS NOT NULL`, now+int64(retain), f.Attempts, fj, []byte(key))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: bury: %w", err)
	}
	return nil
}

const recordColumns = `key, seq, state, attempts, failure, event`

// List implements [dedupe.Inspector].
func (b *Backend) List(ctx context.Context, f dedupe.Filter) ([]dedupe.Record, error) {
	state := 0
	switch f.State {
	case dedupe.Queued:
		state = statePending
	case dedupe.Dead:
		state = stateDead
	}
	limit := f.Max()
	rows, err := b.db.QueryContext(ctx, `SELECT `+recordColumns+` FROM `+b.t.keys+`
		WHERE seq IS NOT NULL AND state IN (1, 3) AND (?1 = 0 OR state = ?1)
			AND (?2 IS NULL OR source = ?2) AND (?3 IS NULL OR type = ?3) AND seq > ?4
		ORDER BY seq LIMIT ?5`, state, nullBytes(f.Source), nullBytes(f.Type), f.After, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", err)
	}
	defer rows.Close()
	var out []dedupe.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list: %w", err)
	}
	return out, nil
}

// Get implements [dedupe.Inspector].
func (b *Backend) Get(ctx context.Context, key string) (dedupe.Record, error) {
	r, err := scanRecord(b.db.QueryRowContext(ctx, `SELECT `+recordColumns+` FROM `+b.t.keys+`
		WHERE key = ? AND seq IS NOT NULL AND state IN (1, 3)`, []byte(key)))
	if errors.Is(err, sql.ErrNoRows) {
		return dedupe.Record{}, fmt.Errorf("sqlite: %q: %w", key, dedupe.ErrNotFound)
	}
	if err != nil {
		return dedupe.Record{}, fmt.Errorf("sqlite: get: %w", err)
	}
	return r, nil
}

// Replay implements [dedupe.Inspector]: a dead row becomes pending with
// no holder, adoptable at once, its attempts reset.
func (b *Backend) Replay(ctx context.Context, key string) error {
	var n int64
	err := b.exec(ctx, func(tx *sql.Tx, now int64) error {
		res, err := tx.Exec(`UPDATE `+b.t.keys+` SET state = 1, attempts = 0, failure = NULL, holder = NULL, started = 0, expires_at = ?
			WHERE key = ? AND state = 3`, now, []byte(key))
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: replay: %w", err)
	}
	if n == 0 {
		if _, err := b.Get(ctx, key); err != nil {
			return err // not there; if it is, it is queued: nothing to do
		}
	}
	return nil
}

// DoneUntil implements [dedupe.DoneLookup].
func (b *Backend) DoneUntil(ctx context.Context, key string) (time.Time, bool, error) {
	var until int64
	err := b.db.QueryRowContext(ctx, `SELECT expires_at FROM `+b.t.keys+` WHERE key = ? AND state = 2 AND expires_at > ?`,
		[]byte(key), b.now().UnixNano()).Scan(&until)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("sqlite: done: %w", err)
	}
	return time.Unix(0, until), true, nil
}

// ReplayMany implements [dedupe.BatchInspector]: one transaction.
func (b *Backend) ReplayMany(ctx context.Context, keys []string) (int, error) {
	n, err := b.eachKey(ctx, keys, `UPDATE `+b.t.keys+` SET state = 1, attempts = 0, failure = NULL, holder = NULL, started = 0, expires_at = ?
			WHERE key = ? AND state = 3`, true)
	if err != nil {
		return 0, fmt.Errorf("sqlite: replay: %w", err)
	}
	return n, nil
}

// DiscardMany implements [dedupe.BatchInspector]: one transaction.
func (b *Backend) DiscardMany(ctx context.Context, keys []string) (int, error) {
	n, err := b.eachKey(ctx, keys, `DELETE FROM `+b.t.keys+` WHERE key = ? AND seq IS NOT NULL AND state IN (1, 3)`, false)
	if err != nil {
		return 0, fmt.Errorf("sqlite: discard: %w", err)
	}
	return n, nil
}

// eachKey runs stmt for each key in one transaction (with the time first
// when withNow) and returns the rows it changed.
func (b *Backend) eachKey(ctx context.Context, keys []string, stmt string, withNow bool) (int, error) {
	var n int64
	err := b.exec(ctx, func(tx *sql.Tx, now int64) error {
		n = 0
		st, err := tx.PrepareContext(ctx, stmt)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, k := range keys {
			args := []any{[]byte(k)}
			if withNow {
				args = []any{now, []byte(k)}
			}
			res, err := st.ExecContext(ctx, args...)
			if err != nil {
				return err
			}
			c, err := res.RowsAffected()
			if err != nil {
				return err
			}
			n += c
		}
		return nil
	})
	return int(n), err
}

// Discard implements [dedupe.Inspector].
func (b *Backend) Discard(ctx context.Context, key string) error {
	var n int64
	err := b.exec(ctx, func(tx *sql.Tx, now int64) error {
		res, err := tx.Exec(`DELETE FROM `+b.t.keys+` WHERE key = ? AND seq IS NOT NULL AND state IN (1, 3)`, []byte(key))
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: discard: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: %q: %w", key, dedupe.ErrNotFound)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanRecord(row scanner) (dedupe.Record, error) {
	var (
		r        dedupe.Record
		key, enc []byte
		failure  []byte
		state    int
	)
	if err := row.Scan(&key, &r.Seq, &state, &r.Attempts, &failure, &enc); err != nil {
		return r, err
	}
	return dedupe.DecodeRecord(key, r.Seq, state == stateDead, r.Attempts, failure, enc)
}

func nullBytes(s string) any {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// candidate is a queued event that Adopt may take.
type candidate struct {
	key, enc []byte // the key, and the event as MarshalBinary wrote it
	seq      int64
	attempts int
	done     sql.NullString // the subscriptions acked in a transaction
	started  bool           // its holder began delivering it
	crashed  bool           // held by a holder that did not give it back
}

// adoptable returns up to n adoptable events, oldest first: given back,
// held by a holder that is gone, or whose claim expired. Each kind is read
// through keys_held in seq order, n at most, so the cost is the batch's.
func (b *Backend) adoptable(tx *sql.Tx, now int64, n int) ([]candidate, error) {
	var cands []candidate
	read := func(crashed bool, sql string, args ...any) error {
		rows, err := tx.Query(sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c := candidate{crashed: crashed}
			if err := rows.Scan(&c.key, &c.seq, &c.enc, &c.attempts, &c.done, &c.started); err != nil {
				return err
			}
			cands = append(cands, c)
		}
		return rows.Err()
	}
	q := adoptSQL(b.t.keys)
	if err := read(false, q.givenBack, n); err != nil {
		return nil, err
	}
	holders, err := b.holders(tx)
	if err != nil {
		return nil, err
	}
	for _, h := range holders {
		if b.lock != nil && h != b.holder && b.lock.gone(h) {
			err = read(true, q.gone, h, n)
		} else {
			// A live holder's claims that expired (it paused past its
			// lease, or no lock tells liveness here): it holds at most
			// its queue's worth, so this reads no backlog.
			err = read(true, q.expired, h, now, n)
		}
		if err != nil {
			return nil, err
		}
	}
	slices.SortFunc(cands, func(a, b candidate) int { return cmp.Compare(a.seq, b.seq) })
	return cands[:min(n, len(cands))], nil
}

// adoptQueries are the reads of adoptable: each searches keys_held in
// seq order (TestAdoptSearchesNeverScans checks their plans).
type adoptQueries struct{ givenBack, gone, expired, holders string }

func adoptSQL(keys string) adoptQueries {
	const queued = ` WHERE state = 1 AND seq IS NOT NULL AND `
	return adoptQueries{
		givenBack: `SELECT key, seq, event, attempts, done, started FROM ` + keys + queued + `holder IS NULL ORDER BY seq LIMIT ?`,
		gone:      `SELECT key, seq, event, attempts, done, started FROM ` + keys + queued + `holder = ? ORDER BY seq LIMIT ?`,
		expired:   `SELECT key, seq, event, attempts, done, started FROM ` + keys + queued + `holder = ? AND expires_at <= ? ORDER BY seq LIMIT ?`,
		holders:   holdersSQL(keys),
	}
}

// holdersSQL lists the holders of queued events in table keys: a skip
// scan, one probe of keys_held for each.
func holdersSQL(keys string) string {
	return `WITH RECURSIVE h(holder) AS (
		SELECT (SELECT holder FROM ` + keys + ` WHERE state = 1 AND seq IS NOT NULL AND holder IS NOT NULL ORDER BY holder LIMIT 1)
		UNION ALL
		SELECT (SELECT k.holder FROM ` + keys + ` k WHERE k.state = 1 AND k.seq IS NOT NULL AND k.holder > h.holder ORDER BY k.holder LIMIT 1)
		FROM h WHERE h.holder IS NOT NULL
	) SELECT holder FROM h WHERE holder IS NOT NULL`
}

// holders returns the holders of queued events, found by a skip scan of
// keys_held: one index probe per holder, whatever each holds.
func (b *Backend) holders(tx *sql.Tx) ([]string, error) {
	rows, err := tx.Query(adoptSQL(b.t.keys).holders)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}
