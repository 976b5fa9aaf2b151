package intaketest

import (
	"context"
	"maps"
	"sync"

	"github.com/intakehq/intake/event"
)

// Counter counts the events handed to its Handle, by ID; it is safe for
// concurrent use, and its zero value is ready. Replica and crash tests
// give it to every stream and check that each event came once.
type Counter struct {
	mu sync.Mutex
	n  map[string]int
}

// Handle counts e and returns nil: a handler for [intake.Stream.Handle].
func (c *Counter) Handle(_ context.Context, e event.Event) error {
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[e.ID]++
	c.mu.Unlock()
	return nil
}

// Counts returns a copy of the counts so far.
func (c *Counter) Counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// Len returns how many distinct events were handled so far.
func (c *Counter) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.n)
}
