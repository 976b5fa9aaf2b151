package intake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/intakehq/intake/event"
)

// ErrNoRoute is the error a [Router] gives an event whose type has no
// route, when it dead-letters it (the default; see [Router.Otherwise]).
var ErrNoRoute = errors.New("intake: no route for the event's type")

// Router picks the handler of each event by its type: the route of that
// exact type, else the route of the longest prefix of it ("invoice."
// takes "invoice.paid"), else the handler for other types. Its Handle
// method is a [HandlerFunc] for [Stream.Handle]. Register routes before
// the stream runs; a Router is safe for concurrent use once it does.
//
// By default an event of a type with no route is dead-lettered at once
// with [ErrNoRoute] (nothing goes unnoticed; the console lists it, and a
// new route and a replay handle it); [Router.Otherwise] chooses another
// handler, such as [AckUnrouted].
type Router struct {
	exact    map[string]HandlerFunc
	prefixes []prefixRoute // longest first
	other    HandlerFunc
	unrouted atomic.Int64
}

type prefixRoute struct {
	prefix string
	fn     HandlerFunc
}

// NewRouter returns a Router with no route.
func NewRouter() *Router { return &Router{exact: map[string]HandlerFunc{}} }

// On routes the events of type typ to fn. It panics on an empty type, a
// nil fn, or a type routed already: two routes for one type are a
// mistake to see at start.
func (r *Router) On(typ string, fn HandlerFunc) *Router {
	switch {
	case typ == "":
		panic("intake: Router.On with an empty type")
	case fn == nil:
		panic(fmt.Sprintf("intake: Router.On(%q) with a nil function", typ))
	case r.exact[typ] != nil:
		panic(fmt.Sprintf("intake: Router.On(%q): the type has a route already", typ))
	}
	r.exact[typ] = fn
	return r
}

// OnPrefix routes the events whose type starts with prefix, and has no
// route of its own nor a longer prefix's, to fn. It panics on an empty
// prefix, a nil fn, or a prefix routed already.
func (r *Router) OnPrefix(prefix string, fn HandlerFunc) *Router {
	switch {
	case prefix == "":
		panic("intake: Router.OnPrefix with an empty prefix (use Otherwise)")
	case fn == nil:
		panic(fmt.Sprintf("intake: Router.OnPrefix(%q) with a nil function", prefix))
	case slices.ContainsFunc(r.prefixes, func(p prefixRoute) bool { return p.prefix == prefix }):
		panic(fmt.Sprintf("intake: Router.OnPrefix(%q): the prefix has a route already", prefix))
	}
	r.prefixes = append(r.prefixes, prefixRoute{prefix, fn})
	slices.SortStableFunc(r.prefixes, func(a, b prefixRoute) int { return len(b.prefix) - len(a.prefix) })
	return r
}

// Otherwise sets the handler of the events whose type has no route.
func (r *Router) Otherwise(fn HandlerFunc) *Router {
	if fn == nil {
		panic("intake: Router.Otherwise with a nil function")
	}
	r.other = fn
	return r
}

// AckUnrouted is a handler for [Router.Otherwise] that acks an event of
// a type with no route: it is counted ([Router.Unrouted]) and dropped.
func AckUnrouted(context.Context, event.Event) error { return nil }

// Unrouted returns how many events had a type with no route.
func (r *Router) Unrouted() int64 { return r.unrouted.Load() }

// Handle calls the handler of e's route. It is a [HandlerFunc].
func (r *Router) Handle(ctx context.Context, e event.Event) error {
	if fn := r.exact[e.Type]; fn != nil {
		return fn(ctx, e)
	}
	for _, p := range r.prefixes {
		if len(e.Type) >= len(p.prefix) && e.Type[:len(p.prefix)] == p.prefix {
			return p.fn(ctx, e)
		}
	}
	r.unrouted.Add(1)
	if r.other != nil {
		return r.other(ctx, e)
	}
	return Permanent(fmt.Errorf("%w: %q", ErrNoRoute, e.Type))
}

// JSON returns a [HandlerFunc] that decodes the event's payload, a JSON
// document, into a T and calls fn with it. A payload that does not decode
// is a permanent error ([Permanent]): retrying cannot fix it, so the
// event is dead-lettered at once with the decoding error, for a fix and
// a replay.
func JSON[T any](fn func(ctx context.Context, e event.Event, v T) error) HandlerFunc {
	if fn == nil {
		panic("intake: JSON with a nil function")
	}
	return func(ctx context.Context, e event.Event) error {
		var v T
		if err := json.Unmarshal(e.Payload, &v); err != nil {
			return Permanent(fmt.Errorf("intake: decode %s event %s as %T: %w", e.Type, e.ID, v, err))
		}
		return fn(ctx, e, v)
	}
}
