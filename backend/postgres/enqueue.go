package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// Group commit of enqueues: concurrent Enqueue calls wait in a queue; one
// goroutine takes what is waiting (up to maxEnqueueBatch), answers the
// keys already live with one read that takes no lock and writes nothing,
// and claims the rest with one multi-row INSERT … ON CONFLICT in key
// order. Each caller returns once its row is committed. A lone call takes
// the one-statement path.

const (
	maxEnqueueBatch = 256
	enqueueWriters  = 2 // batches in flight at most
	minSecondBatch  = 8 // requests a second batch waits for while the first is in flight
	// maxOrderedPerStatement bounds the events with an order key (each
	// an advisory lock to the commit) one statement stores.
	maxOrderedPerStatement = 128
)

type enqueueReq struct {
	hash, key, enc, source, typ []byte
	ordkey                      []byte // nil: unordered
	lease                       int64  // microseconds
	ctx                         context.Context
	st                          dedupe.State
	err                         error
	done                        chan struct{}
}

type enqueuer struct {
	b       *Backend
	reqs    chan []*enqueueReq // one call's requests: one, or a page
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

func newEnqueuer(b *Backend) *enqueuer {
	e := &enqueuer{b: b, reqs: make(chan []*enqueueReq, 4*maxEnqueueBatch), stop: make(chan struct{}), stopped: make(chan struct{})}
	go e.loop()
	return e
}

func (e *enqueuer) close() {
	e.once.Do(func() { close(e.stop) })
	<-e.stopped
}

// errBackendClosed is returned by an Enqueue after Close.
var errBackendClosed = errors.New("postgres: backend closed")

func (e *enqueuer) enqueue(ctx context.Context, key string, ev event.Event, lease time.Duration) (dedupe.State, error) {
	sts, errs := e.enqueueMany(ctx, []string{key}, []event.Event{ev}, lease)
	return sts[0], errs[0]
}

// enqueueMany hands the events to the writer together, so that they share
// a batch, and waits for every answer.
func (e *enqueuer) enqueueMany(ctx context.Context, keys []string, evs []event.Event, lease time.Duration) ([]dedupe.State, []error) {
	rs := make([]*enqueueReq, len(keys))
	for i, key := range keys {
		enc, _ := evs[i].MarshalBinary()
		rs[i] = &enqueueReq{hash: hash(key), key: []byte(key), enc: enc, source: []byte(evs[i].Source), typ: []byte(evs[i].Type),
			lease: micros(lease), ctx: ctx, done: make(chan struct{})}
		if k := evs[i].Meta[event.MetaOrder]; k != "" {
			rs[i].ordkey = []byte(k)
		}
	}
	sts, errs := make([]dedupe.State, len(rs)), make([]error, len(rs))
	var err error
	select {
	case e.reqs <- rs:
	case <-e.stop:
		err = errBackendClosed
	case <-ctx.Done():
		err = ctx.Err()
	}
	for i, r := range rs {
		if err != nil {
			errs[i] = err
			continue
		}
		<-r.done // once handed over, it is written or failed: wait, so a stored event is never reported unstored
		sts[i], errs[i] = r.st, r.err
	}
	return sts, errs
}

// loop gathers requests into batches and writes them, at most
// enqueueWriters at a time: while one batch commits, the next gathers.
// A second batch starts only once it has minSecondBatch requests (or the
// first is done), so that a light load is not split into batches of one
// that each cost a commit. Each batch locks its rows in hash order, so two
// never wait on each other in a cycle.
func (e *enqueuer) loop() {
	defer close(e.stopped)
	finished := make(chan struct{}, enqueueWriters)
	inflight := 0
	var batch []*enqueueReq
	for {
		// Take what waits, up to a batch.
	fill:
		for len(batch) < maxEnqueueBatch {
			select {
			case rs := <-e.reqs:
				batch = append(batch, rs...)
			default:
				break fill
			}
		}
		if len(batch) > 0 && (inflight == 0 || (inflight < enqueueWriters && len(batch) >= minSecondBatch)) {
			inflight++
			go func(b []*enqueueReq) {
				e.run(b)
				finished <- struct{}{}
			}(batch)
			batch = nil
			continue
		}
		select {
		case rs := <-e.reqs:
			batch = append(batch, rs...)
		case <-finished:
			inflight--
		case <-e.stop:
			for ; inflight > 0; inflight-- {
				<-finished
			}
			for {
				select {
				case rs := <-e.reqs:
					batch = append(batch, rs...)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				e.run(batch)
			}
			return
		}
	}
}

// run writes a batch and answers every request in it.
func (e *enqueuer) run(batch []*enqueueReq) {
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	b := e.b
	var live []*enqueueReq
	for _, r := range batch {
		if r.ctx.Err() != nil {
			r.err = r.ctx.Err()
			continue
		}
		live = append(live, r)
	}
	if len(live) == 1 {
		r := live[0]
		r.st, r.err = b.claim(r.ctx, b.q.enqueue, string(r.key), r.lease, b.holder, r.key, r.enc, r.source, r.typ, r.ordkey)
		return
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b.maybeCleanup(ctx)

	// Within a batch, a key's first request goes to the database; the
	// others wait for its answer (a second row for one key would fail the
	// statement).
	first := map[string]*enqueueReq{}
	var uniq []*enqueueReq
	for _, r := range live {
		if _, ok := first[string(r.hash)]; !ok {
			first[string(r.hash)] = r
			uniq = append(uniq, r)
		}
	}
	// A statement locks the order keys of its events (queries.go,
	// orderLocks): so many that the server's lock table (by default 64 ×
	// max_connections entries, shared by every session) stays far from
	// full, however large a page.
	for len(uniq) > 0 {
		n, ordered := 0, 0
		for ; n < len(uniq) && ordered < maxOrderedPerStatement; n++ {
			if uniq[n].ordkey != nil {
				ordered++
			}
		}
		e.write(ctx, uniq[:n])
		uniq = uniq[n:]
	}
	for _, r := range live {
		f := first[string(r.hash)]
		if f == r {
			continue
		}
		r.st, r.err = f.st, f.err
		if r.st == dedupe.Claimed {
			r.st = dedupe.Pending // the first of the batch holds it
		}
	}
}

func answer(st int16) dedupe.State {
	switch st {
	case 0:
		return dedupe.Claimed
	case stateDone:
		return dedupe.Done
	}
	return dedupe.Pending
}

// write answers the keys of todo already live and claims the others, in
// one statement (one round trip), rows in hash order (a fixed lock order
// against concurrent batches); a key taken by a concurrent claim
// meanwhile takes the one-statement path.
func (e *enqueuer) write(ctx context.Context, todo []*enqueueReq) {
	b := e.b
	sortByHash(todo)
	n := len(todo)
	hs, keys, encs, srcs, typs, ords := make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n), make([][]byte, n)
	leases := make([]int64, n)
	for i, r := range todo {
		hs[i], keys[i], encs[i], srcs[i], typs[i], ords[i], leases[i] = r.hash, r.key, r.enc, r.source, r.typ, r.ordkey, r.lease
	}
	states := make(map[string]int16, n)
	rows, err := b.pool.Query(ctx, b.q.enqueueBatch, hs, leases, b.holder, keys, encs, srcs, typs, ords)
	if err == nil {
		for rows.Next() {
			var h []byte
			var st int16
			if err = rows.Scan(&h, &st); err != nil {
				break
			}
			states[string(h)] = st
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	if err != nil {
		for _, r := range todo {
			r.err = fmt.Errorf("postgres: claim: %w", err)
		}
		return
	}
	for _, r := range todo {
		if st, ok := states[string(r.hash)]; ok {
			r.st = answer(st)
			continue
		}
		// Taken by a concurrent claim since the read: its state as it is
		// now, through the one-statement path.
		r.st, r.err = b.claim(r.ctx, b.q.enqueue, string(r.key), r.lease, b.holder, r.key, r.enc, r.source, r.typ, r.ordkey)
	}
}

func sortByHash(rs []*enqueueReq) {
	slices.SortFunc(rs, func(a, b *enqueueReq) int { return bytes.Compare(a.hash, b.hash) })
}
