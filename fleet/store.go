package fleet

import (
	"context"
	"errors"
	"time"
)

// Connection is one account a fleet polls: a record in a [Store], not a
// goroutine.
type Connection struct {
	// ID names the connection, unique in its store: the tenant's account,
	// with the source when one account has several ("shopify/store-42").
	ID string `json:"id"`

	// Source names the [Fleet.Source] that polls it, and is the Source of
	// its events (give the provider's webhook the same name so that the
	// stream dedupes across both paths).
	Source string `json:"source"`

	// Interval is the time between polls; 0 means the fleet's
	// ([WithInterval]).
	Interval time.Duration `json:"interval"`

	// Credential is a reference the app resolves when it polls (a row of
	// its own, a secret manager's name), never the secret itself.
	Credential string `json:"credential,omitempty"`

	// Cursor is where the next poll starts: it moves only once every
	// event of a page is stored.
	Cursor string `json:"cursor,omitempty"`

	// Paused is empty for a connection that is polled, or who paused it:
	// [PausedBySystem] after the API refused its credential, or the name
	// of the person (or job) that called Pause.
	Paused string `json:"paused,omitempty"`
	Reason string `json:"reason,omitempty"` // why it is paused

	NextDue   time.Time `json:"next_due"`             // when it is polled next (the store's clock)
	Errors    int       `json:"errors"`               // failed polls in a row
	LastPoll  time.Time `json:"last_poll,omitzero"`   // when the last poll ended
	LastError string    `json:"last_error,omitempty"` // the last failed poll's error, until one succeeds
	Polls     int64     `json:"polls"`                // polls since it was added
	Events    int64     `json:"events"`               // events its polls stored
}

// PausedBySystem is [Connection.Paused] for a connection the fleet paused
// itself (its credential was refused): new credentials resume it.
const PausedBySystem = "system"

// Claim is a connection a replica holds to poll, fenced by Token: a
// store answers a holder's writes only while the token is the one it
// handed out. Pause, Resync and a claim taken over after its lease
// expired change it.
type Claim struct {
	Connection
	Holder string
	Token  int64
}

// Result is what a poll leaves on its connection when it releases it.
type Result struct {
	Cursor    string        // the cursor reached, to store (the claim's own when the poll moved nothing)
	Next      time.Duration // from now (the store's clock) until the connection is due again
	Failed    bool          // the poll failed: the error streak grows; otherwise it is reset
	Error     string        // the error of a failed poll
	Events    int64         // events the poll stored
	Pause     string        // not "": pause the connection by the system, with this reason
	Abandoned bool          // the poll did not happen (the replica is stopping): no poll is counted
}

// Change is an update of a connection's settings; nil fields stay.
type Change struct {
	Interval *time.Duration
	// Credential, when set, resumes a connection the system paused (its
	// user reconnected); a person's pause stays.
	Credential *string
}

// Filter selects connections to list, ordered by ID.
type Filter struct {
	Source string // "" for all
	Paused *bool  // nil for all; true for paused ones only; false for active ones only
	After  string // the last ID of the previous page
	Limit  int    // 0 means 100
}

// Store keeps a fleet's connections and hands them out to replicas.
// Every method is safe for concurrent use, and a store shared by
// replicas (Postgres) makes each of its answers hold across them: a due
// connection is claimed by one replica at a time, and a claim whose
// lease expired can be taken by another, after which the first holder's
// writes are refused. Times are the store's clock. The conformance suite
// in fleettest is the contract in full.
type Store interface {
	// Add stores a new connection, due after the given delay. It returns
	// [ErrExists] when the ID is taken.
	Add(ctx context.Context, c Connection, due time.Duration) error
	// Get returns a connection, or [ErrNotFound].
	Get(ctx context.Context, id string) (Connection, error)
	// List returns the connections the filter selects, by ID.
	List(ctx context.Context, f Filter) ([]Connection, error)
	// Update changes a connection's settings (see [Change]).
	Update(ctx context.Context, id string, ch Change) (Connection, error)
	// Pause stops polling a connection; by says who (a person's name, or
	// [PausedBySystem]). A poll in flight loses its claim.
	Pause(ctx context.Context, id, by, reason string) error
	// Resume makes a paused connection due now, its error streak reset.
	Resume(ctx context.Context, id string) error
	// Resync starts a connection over from cursor (a full sync from the
	// initial cursor when ""), due now. A poll in flight loses its claim.
	Resync(ctx context.Context, id, cursor string) error
	// Remove deletes a connection. A poll in flight loses its claim.
	Remove(ctx context.Context, id string) error

	// Claim hands holder up to n active connections that are due and
	// not claimed (or whose claim's lease has expired), each for lease,
	// the most overdue first. It also says how long until the next
	// connection is due: 0 when more are due than it handed out, -1 when
	// it does not know (a store may not look, to save a statement).
	Claim(ctx context.Context, holder string, n int, lease time.Duration) ([]Claim, time.Duration, error)
	// Extend renews the leases of the holder's claims; it returns the
	// IDs of those it still holds.
	Extend(ctx context.Context, holder string, claims []Claim, lease time.Duration) ([]string, error)
	// Release writes a poll's result on its connection and ends the
	// claim, in one write. It reports false, and writes nothing, when
	// the claim was lost.
	Release(ctx context.Context, c Claim, r Result) (bool, error)
}

var (
	// ErrNotFound is returned for a connection that does not exist.
	ErrNotFound = errors.New("fleet: no such connection")
	// ErrExists is returned by Add for an ID that is taken.
	ErrExists = errors.New("fleet: connection exists")
	// ErrUnauthorized is what a poll returns (wrapped) when the
	// connection's credential is gone: revoked, expired beyond refresh.
	// The fleet pauses the connection (as for an HTTP 401 or 403) and
	// calls the [OnPause] hook once.
	ErrUnauthorized = errors.New("fleet: credential refused")
	// ErrInvalid is returned for a connection or change that cannot be
	// stored: an empty ID or source, a negative interval, an empty pauser.
	ErrInvalid = errors.New("fleet: invalid connection")
)
