package poller

import (
	"context"
	"fmt"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/metric"
	"github.com/intakehq/intake/tracing"
)

// Outcome is what one poll did.
type Outcome struct {
	Cursor     string        // the cursor reached: the last saved, or the one the poll started from
	Wait       time.Duration // the least delay the server asked for before the next request, capped by [WithMaxRetryAfter]
	Pages      int           // fetches made
	Events     int64         // events stored
	Duplicates int64         // events the stream already had
}

// Once runs one poll from cursor ("" means [WithInitialCursor]'s) into
// sink, as Run does between two waits: up to the page cap, each page's
// events all stored before the checkpoint is given the page's cursor, the
// limiter waited before each fetch. It is the poll for a scheduler of its
// own (package fleet polls many connections with it): no lease, no
// interval, no backoff — the caller decides when the next poll comes,
// from the Outcome's Wait and the error (wrapped by [event.RetryAfter]
// when the server asked for a delay). [ErrCursorExpired] saves the
// initial cursor and ends the poll without an error.
//
// Once may run while Run does not; it is not safe to call concurrently
// with Run or with itself.
func (p *Poller) Once(ctx context.Context, sink event.Sink, cursor string) (Outcome, error) {
	if m, ok := sink.(interface{ Metrics() metric.Recorder }); ok && !p.cfg.recSet {
		p.cfg.rec = m.Metrics()
	}
	if t, ok := sink.(interface{ Tracer() tracing.Tracer }); ok && !p.cfg.tracerSet {
		p.cfg.tracer = t.Tracer()
	}
	if cursor == "" {
		cursor = p.cfg.initial
	}
	before := p.Stats()
	slow, next, err := p.cycle(ctx, sink, cursor)
	after := p.Stats()
	return Outcome{
		Cursor: next, Wait: slow, Pages: int(after.Polls - before.Polls),
		Events: after.Events - before.Events, Duplicates: after.Duplicates - before.Duplicates,
	}, err
}

// Lookback returns a fetch that asks f for the records of the last d
// behind a time cursor, so that a record the API lists late with an
// older timestamp (written by a transaction that committed after a later
// one, or back-dated by the provider) is still seen: the cursor is an
// RFC 3339 time, f is given it minus d, and the cursor f returns never
// moves the saved one backwards. The overlap is fetched again on every
// poll; the stream's idempotency store answers it as duplicates
// ([Stats].Duplicates, [Outcome].Duplicates count it). A cursor that is
// not a time (the initial "") is passed as it is. It panics if d is
// negative.
func Lookback(d time.Duration, f Fetcher) Fetcher {
	if d < 0 {
		panic(fmt.Sprintf("poller: Lookback(%v): must not be negative", d))
	}
	return FetchFunc(func(ctx context.Context, cursor string) (Page, error) {
		at, err := time.Parse(time.RFC3339Nano, cursor)
		if err != nil {
			return f.Fetch(ctx, cursor)
		}
		pg, err := f.Fetch(ctx, at.Add(-d).Format(time.RFC3339Nano))
		if err != nil {
			return pg, err
		}
		if next, err := time.Parse(time.RFC3339Nano, pg.Next); err == nil && !next.After(at) {
			pg.Next = "" // never behind the cursor the poll started from
		}
		return pg, nil
	})
}
