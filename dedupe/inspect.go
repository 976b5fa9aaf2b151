package dedupe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/intakehq/intake/event"
)

// Failure says why an event is dead: the last error, how many deliveries
// it had, the first and the last, and the subscription that gave up.
type Failure struct {
	Err          string      `json:"error"`
	Class        event.Class `json:"class"` // the last error's: permanent, or transient when the attempts ran out
	Attempts     int         `json:"attempts"`
	First        time.Time   `json:"first_attempt,omitzero"`
	Last         time.Time   `json:"last_attempt,omitzero"`
	Subscription string      `json:"subscription,omitempty"`
}

// RecordState is the state of an event a queue holds, as an [Inspector]
// shows it: queued or dead. (Not to be confused with [State], the answer
// of a claim: claimed, pending or done.) In JSON it is the word.
type RecordState uint8

const (
	// Queued is an event stored and not yet done: waiting, in delivery,
	// or held by a holder that died and waiting to be adopted.
	Queued RecordState = iota + 1
	// Dead is an event that ran out of attempts: kept with its failure
	// until it is replayed, discarded, or arrives again, or until its
	// retention ends.
	Dead
)

// String returns "queued", "dead" or "unknown".
func (s RecordState) String() string {
	switch s {
	case Queued:
		return "queued"
	case Dead:
		return "dead"
	}
	return "unknown"
}

// MarshalText returns "queued" or "dead"; the zero RecordState is empty.
func (s RecordState) MarshalText() ([]byte, error) {
	switch s {
	case 0:
		return nil, nil
	case Queued, Dead:
		return []byte(s.String()), nil
	}
	return nil, fmt.Errorf("dedupe: unknown record state %d", uint8(s))
}

// UnmarshalText reads what MarshalText writes.
func (s *RecordState) UnmarshalText(b []byte) error {
	switch string(b) {
	case "":
		*s = 0
	case "queued":
		*s = Queued
	case "dead":
		*s = Dead
	default:
		return fmt.Errorf("dedupe: record state is \"queued\" or \"dead\", not %q", b)
	}
	return nil
}

// Record is an event as an [Inspector] shows it. Its JSON has lower-case
// keys, the state as a word and the event as [event.Event.MarshalJSON]
// writes it.
type Record struct {
	Key      string      `json:"key"`
	Seq      int64       `json:"seq"` // the order of arrival; List pages by it
	State    RecordState `json:"state"`
	Attempts int         `json:"attempts"`            // deliveries counted so far
	InFlight bool        `json:"in_flight,omitempty"` // out to a subscriber now (as the stream that lists it knows)
	Failure  *Failure    `json:"failure,omitempty"`   // for a dead event
	Event    event.Event `json:"event"`
}

// Filter chooses what [Inspector.List] returns: records of a state (0:
// any), a source and a type ("" : any), after a Seq (paging), at most
// Limit of them (0: 100).
type Filter struct {
	State  RecordState
	Source string
	Type   string
	After  int64
	Limit  int
}

// ErrNotFound is returned, wrapped, by [Inspector] methods for a key that
// holds no event.
var ErrNotFound = errors.New("dedupe: no such event")

// Inspector lets an operator see and act on the events a queue holds:
// list them by state, source and type, read one, replay a dead one, or
// discard one. Every durable backend implements it, and so does the
// stream for its in-memory queue; the suite
// [github.com/intakehq/intake/dedupe/dedupetest.RunQueue] checks it.
type Inspector interface {
	// List returns the records that match f, in Seq order.
	List(ctx context.Context, f Filter) ([]Record, error)
	// Get returns the record of key, or an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) (Record, error)
	// Replay puts a dead event back in the queue with its attempts reset,
	// to be delivered at once. Replaying a queued event changes nothing.
	Replay(ctx context.Context, key string) error
	// Discard forgets an event, queued or dead: a later arrival of its key
	// is a new event. A delivery already under way is not stopped.
	Discard(ctx context.Context, key string) error
}

// BatchInspector is an [Inspector] that replays and discards many keys
// in one round trip: what package bulk uses when the queue has it. The
// Postgres and SQLite backends and the stream implement it; the suite
// [github.com/intakehq/intake/dedupe/dedupetest.RunQueue] checks it when
// a queue has it.
type BatchInspector interface {
	Inspector
	// ReplayMany replays, as Replay, those of keys that are dead, and
	// returns how many it replayed. Keys that are queued or hold nothing
	// are left as they are and not counted; no error is returned for them.
	ReplayMany(ctx context.Context, keys []string) (int, error)
	// DiscardMany discards, as Discard, those of keys that hold an event
	// (queued or dead), and returns how many it discarded.
	DiscardMany(ctx context.Context, keys []string) (int, error)
}

// DefaultListLimit is the number of records List returns when Filter.Limit
// is 0.
const DefaultListLimit = 100

// Max is the number of records List returns at most: Limit, or
// [DefaultListLimit] when Limit is 0 or less.
func (f Filter) Max() int {
	if f.Limit <= 0 {
		return DefaultListLimit
	}
	return f.Limit
}

// DecodeRecord is for [Queue] implementations, not for their users: it
// builds a [Record] from the columns a queue keeps: the key's bytes, the
// seq, whether it is dead, the attempts, the failure as encoding/json
// wrote it (or nothing), and the event as [event.Event.MarshalBinary]
// wrote it. Backends share it so that every one reads the same way what
// it stored.
func DecodeRecord(key []byte, seq int64, dead bool, attempts int, failure, enc []byte) (Record, error) {
	r := Record{Key: string(key), Seq: seq, State: Queued, Attempts: attempts}
	if dead {
		r.State = Dead
	}
	if len(failure) > 0 {
		r.Failure = new(Failure)
		if err := json.Unmarshal(failure, r.Failure); err != nil {
			return r, fmt.Errorf("dedupe: failure of %q: %w", key, err)
		}
	}
	if err := r.Event.UnmarshalBinary(enc); err != nil {
		return r, fmt.Errorf("dedupe: event of %q: %w", key, err)
	}
	return r, nil
}

// Lister is what [Find] reads: an [Inspector], or a stream.
type Lister interface {
	List(ctx context.Context, f Filter) ([]Record, error)
}

// Find returns the records l holds (queued or dead) of the event source
// sent with id, whatever their key. A guarded webhook scheme keys an
// event by its body's hash (event.MetaDedupe), not by its delivery id,
// so that event.Key(source, id) finds nothing; Find reads the source's
// records page by page and keeps those whose Event.ID is id (an empty
// source reads every source's). A committed event is kept as its key
// alone and is not found. It returns the first error of a page.
func Find(ctx context.Context, l Lister, source, id string) ([]Record, error) {
	return Select(ctx, l, Filter{Source: source}, 0, func(r Record) bool { return r.Event.ID == id })
}

// Select returns the records of f (its source, type and state; its After
// and Limit are ignored) that match keeps, reading l page by page, at
// most limit of them (0: all). It is how the console and the CLI filter
// by what a backend does not index: a provider's id ([Find]), a tenant
// (event.MetaTenant). It returns the first error of a page.
func Select(ctx context.Context, l Lister, f Filter, limit int, keep func(Record) bool) ([]Record, error) {
	var found []Record
	f.After, f.Limit = 0, 1000
	for {
		page, err := l.List(ctx, f)
		if err != nil {
			return found, err
		}
		for _, r := range page {
			if keep(r) {
				found = append(found, r)
				if limit > 0 && len(found) == limit {
					return found, nil
				}
			}
		}
		if len(page) < f.Limit {
			return found, nil
		}
		f.After = page[len(page)-1].Seq
	}
}
