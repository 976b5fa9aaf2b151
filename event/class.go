package event

import (
	"errors"
	"fmt"
)

// Class is what kind of failure a handler's error is, which decides what
// the stream does with the event:
//
//   - Transient (the zero Class, and any error not marked): retried with
//     backoff, each failure spending one of the subscription's attempts;
//     dead once they are spent.
//   - Permanent: no retry can fix it (a payload that does not decode, no
//     route for its type, an API's 4xx for the object): dead at once.
//   - Infrastructure: something the handler depends on is unreachable (its
//     database, the store): retried with backoff like a transient failure,
//     but spending no attempt, so an outage of any length dead-letters
//     nothing.
//
// A dead letter records the class of its last failure
// (dedupe.Failure.Class). In JSON and text it is the word.
type Class uint8

const (
	Transient Class = iota
	Permanent
	Infrastructure
)

// String returns "transient", "permanent" or "infrastructure".
func (c Class) String() string {
	switch c {
	case Transient:
		return "transient"
	case Permanent:
		return "permanent"
	case Infrastructure:
		return "infrastructure"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// MarshalText returns the word.
func (c Class) MarshalText() ([]byte, error) {
	if c > Infrastructure {
		return nil, fmt.Errorf("event: unknown failure class %d", uint8(c))
	}
	return []byte(c.String()), nil
}

// UnmarshalText reads the word; "" is Transient.
func (c *Class) UnmarshalText(b []byte) error {
	switch string(b) {
	case "", "transient":
		*c = Transient
	case "permanent":
		*c = Permanent
	case "infrastructure":
		*c = Infrastructure
	default:
		return fmt.Errorf("event: failure class is transient, permanent or infrastructure, not %q", b)
	}
	return nil
}

// Classed is an error that says its class. An error anywhere in a chain
// (errors.As) that has the method classes the whole chain; WithClass
// makes one.
type Classed interface {
	error
	FailureClass() Class
}

// WithClass marks err as a failure of class c; errors.Is and errors.As
// see err through it. A nil err stays nil.
func WithClass(err error, c Class) error {
	if err == nil {
		return nil
	}
	return &classed{err, c}
}

type classed struct {
	err error
	c   Class
}

func (e *classed) Error() string       { return e.err.Error() }
func (e *classed) Unwrap() error       { return e.err }
func (e *classed) FailureClass() Class { return e.c }

// ClassOf returns the class of err: the first in its chain that says one
// ([Classed]), else Transient.
func ClassOf(err error) Class {
	var c Classed
	if errors.As(err, &c) {
		return c.FailureClass()
	}
	return Transient
}
