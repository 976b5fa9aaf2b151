package nats

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// Queue is a durable [dedupe.Queue] in NATS JetStream; see the package
// documentation for its streams and what durability needs. It is safe
// for concurrent use. Each Queue is one holder: give every replica its
// own, and Close it when the replica stops, so that the others adopt its
// events at once.
type Queue struct {
	nc       *nats.Conn
	owned    bool
	js       jetstream.JetStream
	name     string
	root     string // subject root: "intake." + name
	holder   string
	ttl      time.Duration
	replicas int
	retain   time.Duration // the done stream's max age
	timeout  time.Duration // of each request

	recs, done, live jetstream.Stream
	// batched: the server takes atomic batches and per-message TTLs on the
	// records and done streams (nats-server 2.12+), so a commit of many
	// keys is two batches (see CommitMany).
	batched bool

	stop     chan struct{}
	beatDone chan struct{}
	once     sync.Once

	mu        sync.Mutex
	held      map[string]uint64 // key → the sequence of its record, for this holder's claims
	cache     []candidate       // adoptable records the last scan found, oldest first
	lastFreed uint64            // the freed marker's sequence at the last scan
	scanned   bool              // a scan has run: the first Adopt always scans
	lost      []lostAdoption    // adoptions whose reply was lost, to give back

	wakeOnce sync.Once
	wakeCh   chan struct{}
	wakeSub  *nats.Subscription

	// adoptReplyLost, when set (tests), fails an adoption after its write
	// was stored, as a connection cut while the reply comes back does.
	adoptReplyLost func() error
	// deleteRefused, when set (tests) and true, makes a deletion fail as
	// the server's "unsuccessful" answer does, the message kept;
	// deleteSkipped makes one report success and keep the message.
	deleteRefused, deleteSkipped func() bool
}

// Option configures a [Queue].
type Option func(*Queue)

// WithName sets the name of the queue's streams (N, N_DONE, N_LIVE) and
// of its subjects (intake.N.…): letters, digits, '-' and '_'. Defaults
// to "INTAKE". Replicas that share events share the name.
func WithName(name string) Option { return func(q *Queue) { q.name = name } }

// WithReplicas sets how many servers keep each stream when the queue
// makes them: 1 (the default), or 3 or 5 on a cluster. A stream that
// exists keeps its own.
func WithReplicas(n int) Option { return func(q *Queue) { q.replicas = n } }

// WithHeartbeat sets how long a holder is taken for alive after its last
// heartbeat (renewed every fifth of it): how soon a killed replica's
// events are adopted. It is the max age of the N_LIVE stream, so every
// replica of a queue must use the same; it is at least a second.
// Defaults to 5 seconds.
func WithHeartbeat(ttl time.Duration) Option { return func(q *Queue) { q.ttl = ttl } }

// WithMaxRetention sets the max age of the N_DONE stream: the longest an
// event's key is remembered once done, whatever retention the stream
// asks for. Defaults to 7 days, intake's default retention.
func WithMaxRetention(d time.Duration) Option { return func(q *Queue) { q.retain = d } }

// WithRequestTimeout sets how long each request to the server may take
// when the caller's context has no deadline. Defaults to 10 seconds.
func WithRequestTimeout(d time.Duration) Option { return func(q *Queue) { q.timeout = d } }

// The defaults.
const (
	DefaultName         = "INTAKE"
	DefaultHeartbeat    = 5 * time.Second
	DefaultMaxRetention = 7 * 24 * time.Hour
)

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// ErrConfig is returned, wrapped, by [NewQueue] for an option out of
// range or streams made with settings the queue cannot work with.
var ErrConfig = errors.New("nats: invalid queue configuration")

// NewQueue makes (or finds) the queue's streams on nc, a connection the
// caller owns, and starts the holder's heartbeat. Close it to stop.
func NewQueue(ctx context.Context, nc *nats.Conn, opts ...Option) (*Queue, error) {
	var r [8]byte
	_, _ = rand.Read(r[:])
	q := &Queue{nc: nc, name: DefaultName, holder: hex.EncodeToString(r[:]), ttl: DefaultHeartbeat, replicas: 1,
		retain: DefaultMaxRetention, timeout: 10 * time.Second, held: map[string]uint64{},
		stop: make(chan struct{}), beatDone: make(chan struct{})}
	for _, o := range opts {
		o(q)
	}
	switch {
	case !validName.MatchString(q.name):
		return nil, fmt.Errorf("%w: name %q: letters, digits, '-' and '_', at most 32", ErrConfig, q.name)
	case q.ttl < time.Second:
		return nil, fmt.Errorf("%w: heartbeat %v: at least 1s: %w", ErrConfig, q.ttl, dedupe.ErrInvalidDuration)
	case q.retain <= 0:
		return nil, fmt.Errorf("%w: max retention %v: %w", ErrConfig, q.retain, dedupe.ErrInvalidDuration)
	case q.timeout <= 0:
		return nil, fmt.Errorf("%w: request timeout %v: %w", ErrConfig, q.timeout, dedupe.ErrInvalidDuration)
	case q.replicas != 1 && q.replicas != 3 && q.replicas != 5:
		return nil, fmt.Errorf("%w: %d replicas: 1, 3 or 5", ErrConfig, q.replicas)
	}
	q.root = "intake." + q.name
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	q.js = js
	if err := q.makeStreams(ctx); err != nil {
		return nil, err
	}
	if err := q.beat(ctx); err != nil {
		return nil, err
	}
	go q.heartbeat()
	return q, nil
}

// OpenQueue connects to url (nats://host:port, or several separated by
// commas) and returns a queue that owns the connection: Close closes it.
func OpenQueue(ctx context.Context, url string, opts ...Option) (*Queue, error) {
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.Name("intake"))
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	q, err := NewQueue(ctx, nc, opts...)
	if err != nil {
		nc.Close()
		return nil, err
	}
	q.owned = true
	return q, nil
}

func (q *Queue) makeStreams(ctx context.Context) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	mk := func(cfg jetstream.StreamConfig) (jetstream.Stream, error) {
		cfg.Storage, cfg.Replicas = jetstream.FileStorage, q.replicas
		if cfg.MaxMsgsPerSubject == 0 {
			cfg.MaxMsgsPerSubject = 1
		}
		s, err := q.js.CreateStream(ctx, cfg)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			s, err = q.js.Stream(ctx, cfg.Name)
			if err == nil {
				got := s.CachedInfo().Config
				if cfg.AllowRollup && !got.AllowRollup && got.MaxMsgsPerSubject == 1 && slices.Equal(got.Subjects, cfg.Subjects) && got.MaxAge == cfg.MaxAge {
					// The records stream as an earlier version made it:
					// rewrites now purge older versions themselves.
					got.MaxMsgsPerSubject, got.AllowRollup = cfg.MaxMsgsPerSubject, true
					if s, err = q.js.UpdateStream(ctx, got); err != nil {
						return nil, fmt.Errorf("nats: stream %s: allowing rollups: %w", cfg.Name, err)
					}
					got = s.CachedInfo().Config
				}
				if !slices.Equal(got.Subjects, cfg.Subjects) || got.MaxMsgsPerSubject != cfg.MaxMsgsPerSubject || got.MaxAge != cfg.MaxAge || got.AllowRollup != cfg.AllowRollup {
					return nil, fmt.Errorf("%w: stream %s exists with subjects %v, %d messages a subject, max age %v and rollups allowed %v; want %v, %d, %v and %v",
						ErrConfig, cfg.Name, got.Subjects, got.MaxMsgsPerSubject, got.MaxAge, got.AllowRollup, cfg.Subjects, cfg.MaxMsgsPerSubject, cfg.MaxAge, cfg.AllowRollup)
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("nats: stream %s: %w", cfg.Name, err)
		}
		return q.batchable(ctx, s, cfg), nil
	}
	var err error
	// Reads of records and done keys go to the stream's leader (no direct
	// gets, which a follower may answer before it has the last write).
	//
	// A record's older versions are purged by the write that replaces it
	// (a rollup), not by a limit of one message a subject: the server
	// records a purge's deletions, but not a limit's, and a crash then
	// brings an older version back once the newest is deleted (a
	// committed event's record queued again: TestServerCrashUndoesNoDeletion).
	if q.recs, err = mk(jetstream.StreamConfig{Name: q.name, Subjects: []string{q.root + ".e.*", q.root + ".holder.*"}, MaxMsgsPerSubject: -1, AllowRollup: true,
		AllowAtomicPublish: true, AllowMsgTTL: true}); err != nil {
		return err
	}
	if q.done, err = mk(jetstream.StreamConfig{Name: q.name + "_DONE", Subjects: []string{q.root + ".d.*"}, MaxAge: q.retain, AllowAtomicPublish: true}); err != nil {
		return err
	}
	if q.live, err = mk(jetstream.StreamConfig{Name: q.name + "_LIVE", Subjects: []string{q.root + ".live.*", q.root + ".freed"}, MaxAge: q.ttl}); err != nil {
		return err
	}
	r, d := q.recs.CachedInfo().Config, q.done.CachedInfo().Config
	q.batched = r.AllowAtomicPublish && r.AllowMsgTTL && d.AllowAtomicPublish
	return nil
}

// batchable turns on what batched commits need on a stream made without
// it (by an earlier version, or on an older server, which ignores the
// settings: the queue then commits key by key).
func (q *Queue) batchable(ctx context.Context, s jetstream.Stream, want jetstream.StreamConfig) jetstream.Stream {
	got := s.CachedInfo().Config
	if got.AllowAtomicPublish == want.AllowAtomicPublish && got.AllowMsgTTL == want.AllowMsgTTL {
		return s
	}
	got.AllowAtomicPublish = got.AllowAtomicPublish || want.AllowAtomicPublish
	got.AllowMsgTTL = got.AllowMsgTTL || want.AllowMsgTTL
	if u, err := q.js.UpdateStream(ctx, got); err == nil {
		return u
	}
	return s
}

// ErrDisconnected is returned, wrapped, by every call made while the
// connection is down (reconnecting): it fails at once, rather than wait
// out the request timeout with its write buffered by the client, to be
// sent later, when the caller has long been told it failed.
var ErrDisconnected = errors.New("nats: not connected to the server")

func (q *Queue) connected() error {
	if !q.nc.IsConnected() {
		return ErrDisconnected
	}
	return nil
}

// ctx gives ctx the request timeout when it has no deadline.
func (q *Queue) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, q.timeout)
}

// beat renews the heartbeat and the holder's registration: a holder
// whose heartbeat lapsed (a long pause) and whose registration another
// took away registers again before it claims more.
func (q *Queue) beat(ctx context.Context) error {
	if err := q.connected(); err != nil {
		return fmt.Errorf("nats: heartbeat: %w", err)
	}
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	if _, err := q.js.Publish(ctx, q.root+".live."+q.holder, nil); err != nil {
		return fmt.Errorf("nats: heartbeat: %w", err)
	}
	reg := nats.NewMsg(q.root + ".holder." + q.holder)
	reg.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject) // the last registration only
	if _, err := q.js.PublishMsg(ctx, reg); err != nil {
		return fmt.Errorf("nats: register: %w", err)
	}
	return nil
}

func (q *Queue) heartbeat() {
	defer close(q.beatDone)
	t := time.NewTicker(q.ttl / 5)
	defer t.Stop()
	sweep := time.NewTicker(time.Minute)
	defer sweep.Stop()
	for {
		select {
		case <-q.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), q.ttl/5)
			_ = q.beat(ctx) // a missed beat is retried at the next tick
			cancel()
		case <-sweep.C:
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			_, _ = q.sweep(ctx, orphanAge)
			cancel()
		}
	}
}

// orphanAge is how old a record this holder holds without knowing of it
// must be before sweep acts on it: a claim or an adoption writes its
// record a moment before the holder notes it.
const orphanAge = 30 * time.Second

// sweep, once a minute, reads every record's headers in one pass: it
// deletes dead records whose retention ended, and repairs the records
// this holder holds, older than minAge, that it does not know of. One
// whose key is done (its deletion lost: the fault campaign saw three,
// older versions a server crash brought back before rewrites purged
// them) is deleted, any other is given back, to be adopted; left alone, either
// would answer every resend "pending" while this holder lives. It
// returns how many it repaired.
func (q *Queue) sweep(ctx context.Context, minAge time.Duration) (int, error) {
	q.mu.Lock()
	known := make(map[string]bool, len(q.held))
	for k := range q.held {
		known[q.subject("e", k)] = true
	}
	q.mu.Unlock()
	var orphans []string
	now := time.Now()
	err := q.each(ctx, true, func(m jetstream.Msg, seq uint64) error {
		md, err := m.Metadata()
		if err != nil {
			return err
		}
		r, err := parseHeader(m.Headers(), seq)
		switch {
		case err != nil:
			return err
		case r.marker(): // its TTL removes it
		case r.expired(now):
			return q.deleteMsg(ctx, q.recs, m.Subject(), seq)
		case r.state == dedupe.Queued && r.holder == q.holder && !known[m.Subject()] && now.Sub(md.Timestamp) >= minAge:
			orphans = append(orphans, m.Subject())
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n, freed := 0, false
	for _, subj := range orphans {
		gctx, cancel := q.ctx(ctx)
		m, err := q.recs.GetLastMsgForSubject(gctx, subj)
		cancel()
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return n, fmt.Errorf("nats: sweep: %w", err)
		}
		r, err := parseRecord(m.Header, m.Data, m.Sequence)
		if err != nil {
			return n, err
		}
		q.mu.Lock()
		_, isKnown := q.held[r.key]
		q.mu.Unlock()
		if r.state != dedupe.Queued || r.holder != q.holder || isKnown {
			continue // changed since
		}
		done, err := q.isDone(ctx, r.key)
		if err != nil {
			return n, err
		}
		if done {
			err = q.deleteMsg(ctx, q.recs, subj, r.last)
		} else {
			_, _, err = q.giveBack(ctx, r)
			freed = true
		}
		if err != nil {
			return n, fmt.Errorf("nats: sweep: %w", err)
		}
		n++
	}
	if freed {
		q.markFreed(ctx)
	}
	return n, nil
}

// Close ends the holder: its heartbeat stops and is deleted, so that the
// other holders adopt its events at once (with an attempt counted, as
// after a crash: give them back first with Extend to avoid that), and the
// connection is closed if [OpenQueue] made it.
func (q *Queue) Close() error {
	var err error
	q.once.Do(func() {
		close(q.stop)
		<-q.beatDone
		ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
		defer cancel()
		err = q.live.Purge(ctx, jetstream.WithPurgeSubject(q.root+".live."+q.holder))
		q.notifyAdopt()
		if q.wakeSub != nil {
			_ = q.wakeSub.Unsubscribe()
		}
		if q.owned {
			err = errors.Join(err, q.nc.Drain())
		} else {
			err = errors.Join(err, q.nc.Flush())
		}
	})
	return err
}

// Ping reports whether JetStream answers; the stream's health check
// calls it.
func (q *Queue) Ping(ctx context.Context) error {
	if err := q.connected(); err != nil {
		return fmt.Errorf("nats: ping: %w", err)
	}
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	if _, err := q.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("nats: ping: %w", err)
	}
	return nil
}

// Holder returns the holder's id: its heartbeat is intake.N.live.<id>.
func (q *Queue) Holder() string { return q.holder }

// subject is the record subject of key: a hash, since a key may hold any
// bytes and a subject may not.
func (q *Queue) subject(stream, key string) string {
	return q.root + "." + stream + "." + hashKey(key)
}

// hashKey is a key as a subject token: its SHA-256, base64url.
func hashKey(key string) string {
	h := sha256.Sum256([]byte(key))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// The headers of a record.
const (
	hState    = "Intake-State"    // "queued" or "dead"
	hHolder   = "Intake-Holder"   // its holder; empty: adoptable
	hSeq      = "Intake-Seq"      // the sequence of its first write (the order of arrival); absent on that write
	hAttempts = "Intake-Attempts" //
	hUntil    = "Intake-Until"    // a dead record's (or a done key's) end of retention, Unix ms
	hToken    = "Intake-Token"    // the adoption that took it
)

// record is a record's content.
type record struct {
	key      string
	state    dedupe.RecordState
	holder   string
	seq      uint64 // of arrival
	attempts int
	until    int64 // Unix ms; dead records
	token    string
	failure  []byte // JSON
	enc      []byte // the event, binary
	last     uint64 // the sequence of the message that holds it now
}

func (r *record) msg(subject string) *nats.Msg {
	m := nats.NewMsg(subject)
	st := "queued"
	if r.state == dedupe.Dead {
		st = "dead"
		m.Header.Set(hUntil, strconv.FormatInt(r.until, 10))
	}
	m.Header.Set(hState, st)
	m.Header.Set(hHolder, r.holder)
	if r.seq != 0 {
		m.Header.Set(hSeq, strconv.FormatUint(r.seq, 10))
	}
	m.Header.Set(hAttempts, strconv.Itoa(r.attempts))
	if r.token != "" {
		m.Header.Set(hToken, r.token)
	}
	b := make([]byte, 0, 16+len(r.key)+len(r.failure)+len(r.enc))
	b = appendBytes(b, []byte(r.key))
	b = appendBytes(b, r.failure)
	m.Data = append(b, r.enc...)
	return m
}

func appendBytes(b, v []byte) []byte {
	b = strconv.AppendInt(b, int64(len(v)), 10)
	b = append(b, ':')
	return append(b, v...)
}

func readBytes(b []byte) (v, rest []byte, ok bool) {
	i := 0
	for i < len(b) && b[i] != ':' {
		i++
	}
	n, err := strconv.Atoi(string(b[:i]))
	if err != nil || i == len(b) || n < 0 || n > len(b)-i-1 {
		return nil, nil, false
	}
	return b[i+1 : i+1+n], b[i+1+n:], true
}

// parseHeader reads a record's headers (its body, if any, is read by
// parseBody).
func parseHeader(h nats.Header, last uint64) (record, error) {
	r := record{last: last, holder: h.Get(hHolder), token: h.Get(hToken)}
	switch h.Get(hState) {
	case "queued":
		r.state = dedupe.Queued
	case "dead":
		r.state = dedupe.Dead
	default:
		return r, fmt.Errorf("nats: record at %d: state %q", last, h.Get(hState))
	}
	r.seq = last
	if s := h.Get(hSeq); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return r, fmt.Errorf("nats: record at %d: seq %q", last, s)
		}
		r.seq = v
	}
	a, err := strconv.Atoi(h.Get(hAttempts))
	if err != nil {
		return r, fmt.Errorf("nats: record at %d: attempts %q", last, h.Get(hAttempts))
	}
	r.attempts = a
	if r.state == dedupe.Dead {
		if r.until, err = strconv.ParseInt(h.Get(hUntil), 10, 64); err != nil {
			return r, fmt.Errorf("nats: record at %d: until %q", last, h.Get(hUntil))
		}
	}
	return r, nil
}

func parseRecord(h nats.Header, data []byte, last uint64) (record, error) {
	r, err := parseHeader(h, last)
	if err != nil {
		return r, err
	}
	k, rest, ok := readBytes(data)
	if ok {
		r.failure, r.enc, ok = readBytes(rest)
	}
	if !ok {
		return r, fmt.Errorf("nats: record at %d: malformed body", last)
	}
	r.key = string(k)
	if len(r.failure) == 0 {
		r.failure = nil
	}
	return r, nil
}

// expired reports whether a dead record's retention has ended.
func (r *record) expired(now time.Time) bool {
	return r.state == dedupe.Dead && now.UnixMilli() >= r.until
}

// get reads key's record; found is false when it has none (or one that
// does not hold key: a hash collision, which the key's bytes settle).
func (q *Queue) get(ctx context.Context, key string) (r record, found bool, err error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	m, err := q.recs.GetLastMsgForSubject(ctx, q.subject("e", key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("nats: get: %w", err)
	}
	r, err = parseRecord(m.Header, m.Data, m.Sequence)
	if err != nil {
		return r, false, err
	}
	return r, r.key == key, nil
}

// isDone reports whether key is done and its retention has not ended.
func (q *Queue) isDone(ctx context.Context, key string) (bool, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	m, err := q.done.GetLastMsgForSubject(ctx, q.subject("d", key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("nats: done: %w", err)
	}
	until, _ := strconv.ParseInt(m.Header.Get(hUntil), 10, 64)
	return string(m.Data) == key && time.Now().UnixMilli() < until, nil
}

// put writes r for key if the key's last message is still at expect (0:
// if it has none); conflict is true when it was not.
func (q *Queue) put(ctx context.Context, r *record, expect uint64) (seq uint64, conflict bool, err error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	m := r.msg(q.subject("e", r.key))
	if expect != 0 { // a new version: the older ones are purged with it
		m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	}
	ack, err := q.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(expect))
	if err != nil {
		if isConflict(err) {
			return 0, true, nil
		}
		if errors.Is(err, nats.ErrMaxPayload) {
			return 0, false, fmt.Errorf("nats: event of %d bytes is larger than the server's max_payload: %w", len(r.enc), event.ErrInvalid)
		}
		return 0, false, fmt.Errorf("nats: write: %w", err)
	}
	return ack.Sequence, false, nil
}

func isConflict(err error) bool {
	var api *jetstream.APIError
	if errors.As(err, &api) {
		return api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant
	}
	return false
}

// del asks the server to delete the message at seq of s.
func (q *Queue) del(ctx context.Context, s jetstream.Stream, seq uint64) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	if q.deleteRefused != nil && q.deleteRefused() {
		return fmt.Errorf("%w: refused (test)", jetstream.ErrMsgDeleteUnsuccessful)
	}
	if q.deleteSkipped != nil && q.deleteSkipped() {
		return nil
	}
	return s.DeleteMsg(ctx, seq)
}

// deleteMsg deletes the message at seq of s, the last one on subject.
// The server answers "unsuccessful" both for a message already gone
// (replaced or deleted: no error here) and for one it failed to delete:
// the subject's last message tells which.
func (q *Queue) deleteMsg(ctx context.Context, s jetstream.Stream, subject string, seq uint64) error {
	err := q.del(ctx, s, seq)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		return fmt.Errorf("nats: delete: %w", err)
	}
	rctx, cancel := q.ctx(ctx)
	defer cancel()
	m, gerr := s.GetLastMsgForSubject(rctx, subject)
	switch {
	case errors.Is(gerr, jetstream.ErrMsgNotFound):
		return nil
	case gerr != nil:
		return fmt.Errorf("nats: delete: %w (reading it back: %v)", err, gerr)
	case m.Sequence == seq:
		return fmt.Errorf("nats: delete %d: %w", seq, err)
	}
	return nil
}

func validDuration(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("nats: duration %v: %w", d, dedupe.ErrInvalidDuration)
	}
	return nil
}

// Enqueue implements [dedupe.Queue]. A key done is answered from the
// done stream. Otherwise the key's record is written only if the key has
// none (or a dead one, which it replaces); then the done stream is read
// again, and a claim of a key done meanwhile is taken back.
func (q *Queue) Enqueue(ctx context.Context, key string, e event.Event, lease time.Duration) (dedupe.State, error) {
	if err := q.connected(); err != nil {
		return 0, fmt.Errorf("nats: enqueue: %w", err)
	}
	if err := validDuration(lease); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	enc, err := e.MarshalBinary()
	if err != nil {
		return 0, fmt.Errorf("nats: %w", err)
	}
	// A resend of a key done, which is most resends (providers retry
	// after seconds or minutes, pollers re-read pages), is answered by
	// one read, with no write to sync. A key not yet done is read again
	// after its record is written, below: it may be done in between.
	if done, err := q.isDone(ctx, key); err != nil {
		return 0, err
	} else if done {
		return dedupe.Done, nil
	}
	r := &record{key: key, state: dedupe.Queued, holder: q.holder, enc: enc}
	var expect uint64
	for range 16 {
		seq, conflict, err := q.put(ctx, r, expect)
		if err != nil {
			return 0, err
		}
		if !conflict {
			// Done before this write? A commit writes the done key and
			// then deletes the record: a key whose record was absent may
			// have been done a moment ago.
			done, err := q.isDone(ctx, key)
			if err != nil {
				return 0, err // held, not reported: the stream gives uncertain claims back
			}
			if done {
				return dedupe.Done, q.deleteMsg(ctx, q.recs, q.subject("e", key), seq)
			}
			q.mu.Lock()
			q.held[key] = seq
			q.mu.Unlock()
			return dedupe.Claimed, nil
		}
		cur, found, err := q.get(ctx, key)
		switch {
		case err != nil:
			return 0, err
		case !found:
			expect = 0 // deleted meanwhile (committed, released): try again
			done, err := q.isDone(ctx, key)
			if err != nil {
				return 0, err
			}
			if done {
				return dedupe.Done, nil
			}
		case cur.state == dedupe.Queued:
			// A queued record of a key that is done is stale, whoever
			// holds it: a commit between its two writes, or one whose
			// deletion the server lost in a crash (see
			// TestServerCrashUndoesNoDeletion). Deleted, the resend is a
			// duplicate; left, it would be answered pending until a
			// sweep or an adopter found the record.
			done, err := q.isDone(ctx, key)
			if err != nil {
				return 0, err
			}
			if !done {
				return dedupe.Pending, nil
			}
			q.mu.Lock()
			if q.held[key] == cur.last {
				delete(q.held, key)
			}
			q.mu.Unlock()
			if err := q.deleteMsg(ctx, q.recs, q.subject("e", key), cur.last); err != nil {
				return 0, err
			}
			return dedupe.Done, nil
		case cur.marker():
			// Committed a moment ago: the marker that removed its record
			// is still there.
			done, err := q.isDone(ctx, key)
			if err != nil {
				return 0, err
			}
			if done {
				return dedupe.Done, nil
			}
			expect = cur.last
		default: // dead: a resend is claimed anew, replacing it
			expect = cur.last
		}
	}
	return 0, fmt.Errorf("nats: enqueue %q: the key changed 16 times under this call", key)
}

// EnqueueMany implements [dedupe.BatchQueue]: the keys of a page are
// claimed concurrently; a key twice in the page is answered for its
// first place and pending (or as the first) for the others.
func (q *Queue) EnqueueMany(ctx context.Context, keys []string, events []event.Event, lease time.Duration) ([]dedupe.State, []error) {
	states, errs := make([]dedupe.State, len(keys)), make([]error, len(keys))
	first := make(map[string]int, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i, k := range keys {
		if _, ok := first[k]; ok {
			continue
		}
		first[k] = i
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			states[i], errs[i] = q.Enqueue(ctx, k, events[i], lease)
		}()
	}
	wg.Wait()
	for i, k := range keys {
		if j := first[k]; j != i {
			states[i], errs[i] = states[j], errs[j]
			if states[i] == dedupe.Claimed {
				states[i] = dedupe.Pending
			}
		}
	}
	return states, errs
}

// candidate is a record a scan found adoptable.
type candidate struct {
	subj   string
	seq    uint64 // of arrival
	holder string // "" for one given back
}

// lostAdoption is a write of Adopt whose reply was lost.
type lostAdoption struct{ key, token string }

// Adopt implements [dedupe.Queue]: it takes the records given back and
// those of holders whose heartbeat is gone, oldest first. Finding them
// costs a scan of the records' headers, made only when a holder died or
// one gave events back, once for all it then takes.
func (q *Queue) Adopt(ctx context.Context, n int, lease time.Duration) ([]dedupe.Stored, error) {
	if err := q.connected(); err != nil {
		return nil, fmt.Errorf("nats: adopt: %w", err)
	}
	if err := validDuration(lease); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, nil
	}
	if err := q.giveBackLost(ctx); err != nil {
		return nil, err
	}
	dead, err := q.deadHolders(ctx)
	if err != nil {
		return nil, err
	}
	freed, err := q.freedSeq(ctx)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	rescan := len(q.cache) == 0 && (len(dead) > 0 || freed != q.lastFreed || !q.scanned)
	q.mu.Unlock()
	if rescan {
		cands, err := q.scan(ctx, dead)
		if err != nil {
			return nil, err
		}
		q.mu.Lock()
		q.cache, q.lastFreed, q.scanned = cands, freed, true
		q.mu.Unlock()
	}
	var out []dedupe.Stored
	for len(out) < n {
		q.mu.Lock()
		take := q.cache[:min(n-len(out), len(q.cache))]
		q.cache = q.cache[len(take):]
		q.mu.Unlock()
		if len(take) == 0 {
			break
		}
		got, err := q.adoptEach(ctx, take, dead)
		out = append(out, got...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// deadHolders returns the registered holders, other than this one, whose
// heartbeat is gone.
func (q *Queue) deadHolders(ctx context.Context) (map[string]bool, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	reg, err := q.recs.Info(ctx, jetstream.WithSubjectFilter(q.root+".holder.*"))
	if err != nil {
		return nil, fmt.Errorf("nats: holders: %w", err)
	}
	live, err := q.live.Info(ctx, jetstream.WithSubjectFilter(q.root+".live.*"))
	if err != nil {
		return nil, fmt.Errorf("nats: heartbeats: %w", err)
	}
	dead := map[string]bool{}
	prefix := len(q.root + ".holder.")
	for subj := range reg.State.Subjects {
		h := subj[prefix:]
		if _, ok := live.State.Subjects[q.root+".live."+h]; !ok && h != q.holder {
			dead[h] = true
		}
	}
	return dead, nil
}

// freedSeq returns the sequence of the last give-back's marker (0: none
// within a heartbeat).
func (q *Queue) freedSeq(ctx context.Context) (uint64, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	m, err := q.live.GetLastMsgForSubject(ctx, q.root+".freed")
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("nats: freed: %w", err)
	}
	return m.Sequence, nil
}

// scan reads every record's headers and returns, oldest first, those
// held by a dead holder or by none. On the way it deletes dead records
// whose retention ended, and the registration of dead holders that hold
// nothing.
func (q *Queue) scan(ctx context.Context, dead map[string]bool) ([]candidate, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []candidate
	holding := map[string]bool{}
	now := time.Now()
	err := q.each(ctx, true, func(m jetstream.Msg, seq uint64) error {
		r, err := parseHeader(m.Headers(), seq)
		if err != nil {
			return err
		}
		switch {
		case r.marker(): // its TTL removes it
		case r.expired(now):
			return q.deleteMsg(ctx, q.recs, m.Subject(), seq)
		case r.state != dedupe.Queued:
		case r.holder == "" || dead[r.holder]:
			holding[r.holder] = true
			out = append(out, candidate{subj: m.Subject(), seq: r.seq, holder: r.holder})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for h := range dead {
		if !holding[h] {
			_ = q.recs.Purge(ctx, jetstream.WithPurgeSubject(q.root+".holder."+h))
		}
	}
	slices.SortFunc(out, func(a, b candidate) int { return cmp.Compare(a.seq, b.seq) })
	return out, nil
}

// each calls fn with the last message of every record subject, in the
// order of the stream (headers only if headersOnly), through a consumer
// of its own that it deletes when done.
func (q *Queue) each(ctx context.Context, headersOnly bool, fn func(m jetstream.Msg, seq uint64) error) error {
	c, err := q.recs.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject: q.root + ".e.*", DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy, AckPolicy: jetstream.AckNonePolicy,
		HeadersOnly: headersOnly, MemoryStorage: true, Replicas: 1, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return fmt.Errorf("nats: scan: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), q.timeout)
		_ = q.recs.DeleteConsumer(dctx, c.CachedInfo().Name)
		cancel()
	}()
	left := c.CachedInfo().NumPending
	deadline := time.Now().Add(q.timeout) // for a batch that does not come
	for left > 0 {
		batch, err := c.FetchNoWait(int(min(left, 500)))
		if err == nil {
			n := 0
			for m := range batch.Messages() {
				n++
				md, err := m.Metadata()
				if err != nil {
					return fmt.Errorf("nats: scan: %w", err)
				}
				left = md.NumPending
				if err := fn(m, md.Sequence.Stream); err != nil {
					return err
				}
			}
			if err = batch.Error(); err == nil && n > 0 {
				deadline = time.Now().Add(q.timeout)
				continue
			}
		}
		// On a cluster a consumer just made may not be reachable yet
		// through every route ("no responders"): wait for it as for
		// messages not yet delivered.
		if err != nil && !errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("nats: scan: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats: scan: %d records not delivered in %v (last: %v)", left, q.timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// adoptEach takes the candidates that are still adoptable, concurrently,
// and returns them in the candidates' order.
func (q *Queue) adoptEach(ctx context.Context, cands []candidate, dead map[string]bool) ([]dedupe.Stored, error) {
	got := make([]*dedupe.Stored, len(cands))
	errs := make([]error, len(cands))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i, c := range cands {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			got[i], errs[i] = q.adoptOne(ctx, c, dead)
		}()
	}
	wg.Wait()
	var out []dedupe.Stored
	for _, s := range got {
		if s != nil {
			out = append(out, *s)
		}
	}
	return out, errors.Join(errs...)
}

// adoptOne takes one candidate if it is still held by the holder the scan
// saw (dead) or by none; a record done meanwhile is deleted instead.
func (q *Queue) adoptOne(ctx context.Context, c candidate, dead map[string]bool) (*dedupe.Stored, error) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	m, err := q.recs.GetLastMsgForSubject(ctx, c.subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nats: adopt: %w", err)
	}
	r, err := parseRecord(m.Header, m.Data, m.Sequence)
	if err != nil {
		return nil, err
	}
	if r.state != dedupe.Queued || r.holder != c.holder || (r.holder != "" && !dead[r.holder]) {
		return nil, nil
	}
	if done, err := q.isDone(ctx, r.key); err != nil {
		return nil, err
	} else if done {
		return nil, q.deleteMsg(ctx, q.recs, c.subj, r.last) // its commit was cut short
	}
	if r.holder != "" {
		r.attempts++ // its holder died with it
	}
	r.holder, r.token = q.holder, strconv.FormatUint(mrand.Uint64(), 36)
	seq, conflict, err := q.put(ctx, &r, r.last)
	if err == nil && q.adoptReplyLost != nil {
		err = q.adoptReplyLost()
	}
	if err != nil {
		// The write may have been stored and its reply lost: what it
		// took is given back at the next Adopt.
		q.mu.Lock()
		q.lost = append(q.lost, lostAdoption{r.key, r.token})
		q.mu.Unlock()
		return nil, fmt.Errorf("nats: adopt: %w", err)
	}
	if conflict {
		return nil, nil // another holder took it
	}
	var e event.Event
	if err := e.UnmarshalBinary(r.enc); err != nil {
		return nil, fmt.Errorf("nats: adopt %q: %w", r.key, err)
	}
	q.mu.Lock()
	q.held[r.key] = seq
	q.mu.Unlock()
	return &dedupe.Stored{Key: r.key, Event: e, Attempts: r.attempts}, nil
}

// giveBackLost gives back what the adoptions whose reply was lost took.
func (q *Queue) giveBackLost(ctx context.Context) error {
	q.mu.Lock()
	lost := q.lost
	q.mu.Unlock()
	if len(lost) == 0 {
		return nil
	}
	for _, l := range lost {
		r, found, err := q.get(ctx, l.key)
		if err != nil {
			return fmt.Errorf("nats: give back a lost adoption: %w", err)
		}
		if !found || r.state != dedupe.Queued || r.holder != q.holder || r.token != l.token {
			continue // not stored, or changed since
		}
		if _, _, err := q.giveBack(ctx, r); err != nil {
			return fmt.Errorf("nats: give back a lost adoption: %w", err)
		}
	}
	q.mu.Lock()
	q.lost = q.lost[len(lost):]
	q.mu.Unlock()
	q.markFreed(ctx)
	return nil
}

// giveBack writes r held by none, if unchanged.
func (q *Queue) giveBack(ctx context.Context, r record) (uint64, bool, error) {
	q.mu.Lock()
	delete(q.held, r.key)
	q.mu.Unlock()
	r.holder, r.token = "", ""
	return q.put(ctx, &r, r.last)
}

// markFreed tells adopters there are records given back: they scan, and
// those that asked for AdoptReady are woken.
func (q *Queue) markFreed(ctx context.Context) {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	_, _ = q.js.Publish(ctx, q.root+".freed", nil)
	q.notifyAdopt()
}

// Extend implements [dedupe.Queue]. A lease above zero only renews the
// heartbeat (a holder keeps its records while it beats); zero gives the
// keys this holder holds back.
func (q *Queue) Extend(ctx context.Context, keys []string, lease time.Duration) error {
	if err := q.connected(); err != nil {
		return fmt.Errorf("nats: extend: %w", err)
	}
	if lease < 0 {
		return validDuration(lease)
	}
	if lease > 0 {
		return q.beat(ctx)
	}
	gave := false
	for _, k := range keys {
		for range 16 {
			r, found, err := q.get(ctx, k)
			if err != nil {
				return fmt.Errorf("nats: give back: %w", err)
			}
			if !found || r.state != dedupe.Queued || r.holder != q.holder {
				break
			}
			_, conflict, err := q.giveBack(ctx, r)
			if err != nil {
				return fmt.Errorf("nats: give back: %w", err)
			}
			if !conflict {
				gave = true
				break
			}
		}
	}
	if gave {
		q.markFreed(ctx)
	}
	return nil
}

// CommitMany implements [dedupe.Queue]: for each key the done key is
// written, then the record removed (a crash between the two leaves a
// record that the next adopter deletes, seeing the key done). On a
// server that takes atomic batches (nats-server 2.12+), the keys go in
// batches of up to 500: one batch of done keys, then one of markers over
// the records this holder holds, where JetStream syncs (R1) or proposes
// (R3) once a batch instead of once a write. Keys whose batch failed are
// committed one by one, concurrently, which is idempotent.
func (q *Queue) CommitMany(ctx context.Context, keys []string, retain time.Duration) error {
	if err := q.connected(); err != nil {
		return fmt.Errorf("nats: commit: %w", err)
	}
	if err := validDuration(retain); err != nil {
		return err
	}
	until := strconv.FormatInt(time.Now().Add(retain).UnixMilli(), 10)
	if !q.batched || len(keys) < 2 {
		return q.concurrently(keys, func(k string) error { return q.commit(ctx, k, until) })
	}
	var errs []error
	var one []string
	for chunk := range slices.Chunk(keys, maxBatch) {
		msgs := make([]*nats.Msg, len(chunk))
		for i, k := range chunk {
			msgs[i] = q.doneMsg(k, until)
		}
		if err := q.publishBatch(ctx, msgs); err != nil {
			one = append(one, chunk...)
			continue
		}
		errs = append(errs, q.dropRecords(ctx, chunk))
	}
	errs = append(errs, q.concurrently(one, func(k string) error { return q.commit(ctx, k, until) }))
	return errors.Join(errs...)
}

// maxBatch is the most messages CommitMany puts in one batch (the
// server's limit is 1,000 by default).
const maxBatch = 500

// concurrently calls fn for each key, 64 at once, and joins the errors.
func (q *Queue) concurrently(keys []string, fn func(string) error) error {
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = fn(k)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (q *Queue) doneMsg(key, until string) *nats.Msg {
	m := nats.NewMsg(q.subject("d", key))
	m.Header.Set(hUntil, until)
	m.Data = []byte(key)
	return m
}

func (q *Queue) commit(ctx context.Context, key, until string) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	if _, err := q.js.PublishMsg(ctx, q.doneMsg(key, until)); err != nil {
		return fmt.Errorf("nats: commit: %w", err)
	}
	return q.dropRecord(ctx, key)
}

// dropRecord deletes the record of key, whose done key is written.
func (q *Queue) dropRecord(ctx context.Context, key string) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	q.mu.Lock()
	seq, ok := q.held[key]
	delete(q.held, key)
	q.mu.Unlock()
	if ok {
		err := q.del(ctx, q.recs, seq)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
			return fmt.Errorf("nats: commit: %w", err)
		}
	}
	// Not known, or the server said no: whatever this holder still holds
	// under the key is the event just done (a record left queued would
	// answer every resend "pending" while this holder lives). Another
	// holder's (adopted when this one's heartbeat lapsed) is left to it.
	r, found, err := q.get(ctx, key)
	if err != nil || !found || r.state != dedupe.Queued || r.holder != q.holder {
		return err
	}
	if err := q.del(ctx, q.recs, r.last); err != nil {
		return fmt.Errorf("nats: commit: delete %d: %w", r.last, err) // tried again by the stream
	}
	return nil
}

// dropRecords removes the records of keys, whose done keys are written:
// those this holder knows it holds by one batch of markers, each
// replacing its record on the sequence the holder knows (a rollup: the
// record is purged with it), which the server removes after markerTTL;
// the others, and all of them if the batch failed (a record changed
// under it), one by one.
func (q *Queue) dropRecords(ctx context.Context, keys []string) error {
	var (
		marks []*nats.Msg
		held  []string
		seqs  []uint64
		rest  []string
	)
	q.mu.Lock()
	for _, k := range keys {
		if seq, ok := q.held[k]; ok {
			marks, held, seqs = append(marks, q.markerMsg(k, seq)), append(held, k), append(seqs, seq)
		} else {
			rest = append(rest, k)
		}
	}
	q.mu.Unlock()
	if len(marks) > 0 {
		if err := q.publishBatch(ctx, marks); err != nil {
			rest = append(rest, held...)
		} else {
			q.mu.Lock()
			for i, k := range held {
				if q.held[k] == seqs[i] {
					delete(q.held, k)
				}
			}
			q.mu.Unlock()
		}
	}
	return q.concurrently(rest, func(k string) error { return q.dropRecord(ctx, k) })
}

// markerTTL is how long a commit's marker stays on its key's subject:
// the shortest per-message TTL JetStream takes.
const markerTTL = "1s"

// markerMsg is the marker that removes key's record, held at seq: a dead
// record of the key whose retention ended before it was written, which
// is what every reader (and earlier versions of this package) takes for
// gone.
func (q *Queue) markerMsg(key string, seq uint64) *nats.Msg {
	r := record{key: key, state: dedupe.Dead}
	m := r.msg(q.subject("e", key))
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(seq, 10))
	m.Header.Set(jetstream.MsgTTLHeader, markerTTL)
	return m
}

// marker reports whether r is a commit's marker (see markerMsg).
func (r *record) marker() bool { return r.state == dedupe.Dead && r.until == 0 }

// The headers of an atomic batch publish (ADR-50), which nats.go does
// not have yet.
const (
	hBatchID     = "Nats-Batch-Id"
	hBatchSeq    = "Nats-Batch-Sequence"
	hBatchCommit = "Nats-Batch-Commit"
)

// publishBatch publishes msgs, all to one stream, as one atomic batch:
// all are stored or none. The server checks every message's
// expectations before it stores any, and syncs (R1) or proposes (R3)
// the batch once.
func (q *Queue) publishBatch(ctx context.Context, msgs []*nats.Msg) error {
	ctx, cancel := q.ctx(ctx)
	defer cancel()
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	last := len(msgs) - 1
	for i, m := range msgs {
		m.Header.Set(hBatchID, id)
		m.Header.Set(hBatchSeq, strconv.Itoa(i+1))
		if i == last {
			m.Header.Set(hBatchCommit, "1")
		} else if err := q.nc.PublishMsg(m); err != nil {
			return fmt.Errorf("nats: batch: %w", err)
		}
	}
	resp, err := q.nc.RequestMsgWithContext(ctx, msgs[last])
	if err != nil {
		return fmt.Errorf("nats: batch: %w", err)
	}
	var ack struct {
		Error *jetstream.APIError `json:"error"`
		Count int                 `json:"count"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return fmt.Errorf("nats: batch: the answer %q: %w", resp.Data, err)
	}
	if ack.Error != nil {
		return fmt.Errorf("nats: batch: %w", ack.Error)
	}
	if ack.Count != len(msgs) {
		return fmt.Errorf("nats: batch of %d: %d stored", len(msgs), ack.Count)
	}
	return nil
}

// Release implements [dedupe.Queue]: a queued record is deleted.
func (q *Queue) Release(ctx context.Context, key string) error {
	if err := q.connected(); err != nil {
		return fmt.Errorf("nats: release: %w", err)
	}
	q.mu.Lock()
	delete(q.held, key)
	q.mu.Unlock()
	r, found, err := q.get(ctx, key)
	if err != nil || !found || r.state != dedupe.Queued {
		return err
	}
	return q.deleteMsg(ctx, q.recs, q.subject("e", key), r.last)
}

// Bury implements [dedupe.Queue].
func (q *Queue) Bury(ctx context.Context, key string, f dedupe.Failure, retain time.Duration) error {
	if err := q.connected(); err != nil {
		return fmt.Errorf("nats: bury: %w", err)
	}
	if err := validDuration(retain); err != nil {
		return err
	}
	fj, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("nats: bury: %w", err)
	}
	q.mu.Lock()
	delete(q.held, key)
	q.mu.Unlock()
	for range 16 {
		r, found, err := q.get(ctx, key)
		if err != nil || !found || r.state != dedupe.Queued {
			return err
		}
		r.state, r.holder, r.token, r.attempts, r.failure = dedupe.Dead, "", "", f.Attempts, fj
		r.until = time.Now().Add(retain).UnixMilli()
		_, conflict, err := q.put(ctx, &r, r.last)
		if err != nil || !conflict {
			return err
		}
	}
	return fmt.Errorf("nats: bury %q: the key changed 16 times under this call", key)
}

// Replay implements [dedupe.Inspector].
func (q *Queue) Replay(ctx context.Context, key string) error {
	if err := q.connected(); err != nil {
		return fmt.Errorf("nats: replay: %w", err)
	}
	for range 16 {
		r, found, err := q.get(ctx, key)
		if err != nil {
			return fmt.Errorf("nats: replay: %w", err)
		}
		if !found || r.expired(time.Now()) {
			return fmt.Errorf("nats: replay %q: %w", key, dedupe.ErrNotFound)
		}
		if r.state == dedupe.Queued {
			return nil
		}
		r.state, r.holder, r.token, r.attempts, r.failure, r.until = dedupe.Queued, "", "", 0, nil, 0
		_, conflict, err := q.put(ctx, &r, r.last)
		if err != nil {
			return fmt.Errorf("nats: replay: %w", err)
		}
		if !conflict {
			q.markFreed(ctx)
			return nil
		}
	}
	return fmt.Errorf("nats: replay %q: the key changed 16 times under this call", key)
}

// Discard implements [dedupe.Inspector].
func (q *Queue) Discard(ctx context.Context, key string) error {
	if err := q.connected(); err != nil {
		return fmt.Errorf("nats: discard: %w", err)
	}
	r, found, err := q.get(ctx, key)
	if err != nil {
		return fmt.Errorf("nats: discard: %w", err)
	}
	if !found || r.expired(time.Now()) {
		return fmt.Errorf("nats: discard %q: %w", key, dedupe.ErrNotFound)
	}
	q.mu.Lock()
	delete(q.held, key)
	q.mu.Unlock()
	return q.deleteMsg(ctx, q.recs, q.subject("e", key), r.last)
}

// Get implements [dedupe.Inspector].
func (q *Queue) Get(ctx context.Context, key string) (dedupe.Record, error) {
	if err := q.connected(); err != nil {
		return dedupe.Record{}, fmt.Errorf("nats: get: %w", err)
	}
	r, found, err := q.get(ctx, key)
	if err != nil {
		return dedupe.Record{}, fmt.Errorf("nats: get: %w", err)
	}
	if !found || r.expired(time.Now()) {
		return dedupe.Record{}, fmt.Errorf("nats: get %q: %w", key, dedupe.ErrNotFound)
	}
	return r.inspect()
}

func (r *record) inspect() (dedupe.Record, error) {
	return dedupe.DecodeRecord([]byte(r.key), int64(r.seq), r.state == dedupe.Dead, r.attempts, r.failure, r.enc)
}

// List implements [dedupe.Inspector]. It reads every record (see the
// package documentation) and returns those f asks for in Seq order.
func (q *Queue) List(ctx context.Context, f dedupe.Filter) ([]dedupe.Record, error) {
	if err := q.connected(); err != nil {
		return nil, fmt.Errorf("nats: list: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	now := time.Now()
	var out []dedupe.Record
	err := q.each(ctx, false, func(m jetstream.Msg, seq uint64) error {
		r, err := parseRecord(m.Headers(), m.Data(), seq)
		if err != nil {
			return err
		}
		if r.expired(now) || int64(r.seq) <= f.After || (f.State != 0 && r.state != f.State) {
			return nil
		}
		rec, err := r.inspect()
		if err != nil {
			return err
		}
		if (f.Source != "" && rec.Event.Source != f.Source) || (f.Type != "" && rec.Event.Type != f.Type) {
			return nil
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("nats: list: %w", err)
	}
	slices.SortFunc(out, func(a, b dedupe.Record) int { return cmp.Compare(a.Seq, b.Seq) })
	return out[:min(len(out), f.Max())], nil
}
