package fleet

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Validate reports a connection that cannot be stored, wrapping
// [ErrInvalid]. Stores call it in Add.
func (c Connection) Validate() error {
	switch {
	case strings.TrimSpace(c.ID) == "":
		return fmt.Errorf("%w: an empty ID", ErrInvalid)
	case strings.TrimSpace(c.Source) == "":
		return fmt.Errorf("%w: %q has no source", ErrInvalid, c.ID)
	case c.Interval < 0:
		return fmt.Errorf("%w: %q: a negative interval %v", ErrInvalid, c.ID, c.Interval)
	}
	return nil
}

// Memory is a [Store] in memory, for one process and for tests: it
// forgets everything when the process ends. The zero value is ready to
// use. Claim looks at every connection, so it suits thousands, not
// millions.
type Memory struct {
	mu    sync.Mutex
	conns map[string]*memConn
	now   func() time.Time // the store's clock; tests set it
}

type memConn struct {
	Connection
	holder string
	token  int64
	until  time.Time
}

func (m *Memory) clock() time.Time {
	if m.now != nil {
		return m.now()
	}
	return time.Now()
}

func (m *Memory) get(id string) (*memConn, error) {
	c, ok := m.conns[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return c, nil
}

// Add implements [Store].
func (m *Memory) Add(_ context.Context, c Connection, due time.Duration) error {
	if err := c.Validate(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conns == nil {
		m.conns = map[string]*memConn{}
	}
	if _, ok := m.conns[c.ID]; ok {
		return fmt.Errorf("%w: %q", ErrExists, c.ID)
	}
	c.NextDue = m.clock().Add(due)
	c.Errors, c.LastPoll, c.LastError, c.Polls, c.Events = 0, time.Time{}, "", 0, 0
	m.conns[c.ID] = &memConn{Connection: c}
	return nil
}

// Get implements [Store].
func (m *Memory) Get(_ context.Context, id string) (Connection, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.get(id)
	if err != nil {
		return Connection{}, err
	}
	return c.Connection, nil
}

// List implements [Store].
func (m *Memory) List(_ context.Context, f Filter) ([]Connection, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	m.mu.Lock()
	var out []Connection
	for _, c := range m.conns {
		if f.matches(c.Connection) {
			out = append(out, c.Connection)
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Connection) int { return strings.Compare(a.ID, b.ID) })
	return out[:min(limit, len(out))], nil
}

// matches reports whether the filter selects c.
func (f Filter) matches(c Connection) bool {
	return (f.Source == "" || c.Source == f.Source) &&
		(f.Paused == nil || *f.Paused == (c.Paused != "")) &&
		c.ID > f.After
}

// Update implements [Store].
func (m *Memory) Update(_ context.Context, id string, ch Change) (Connection, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.get(id)
	if err != nil {
		return Connection{}, err
	}
	if ch.Interval != nil {
		if *ch.Interval < 0 {
			return Connection{}, fmt.Errorf("%w: %q: a negative interval %v", ErrInvalid, id, *ch.Interval)
		}
		c.Interval = *ch.Interval
	}
	if ch.Credential != nil {
		c.Credential = *ch.Credential
		if c.Paused == PausedBySystem {
			c.resume(m.clock())
		}
	}
	return c.Connection, nil
}

func (c *memConn) resume(now time.Time) {
	c.Paused, c.Reason, c.Errors, c.NextDue = "", "", 0, now
}

// Pause implements [Store].
func (m *Memory) Pause(_ context.Context, id, by, reason string) error {
	if strings.TrimSpace(by) == "" {
		return fmt.Errorf("%w: a pause of %q by no one", ErrInvalid, id)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.get(id)
	if err != nil {
		return err
	}
	c.Paused, c.Reason = by, reason
	c.token++
	c.holder = ""
	return nil
}

// Resume implements [Store].
func (m *Memory) Resume(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.get(id)
	if err != nil {
		return err
	}
	if c.Paused != "" {
		c.resume(m.clock())
	}
	return nil
}

// Resync implements [Store].
func (m *Memory) Resync(_ context.Context, id, cursor string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, err := m.get(id)
	if err != nil {
		return err
	}
	c.Cursor, c.NextDue = cursor, m.clock()
	c.token++
	c.holder = ""
	return nil
}

// Remove implements [Store].
func (m *Memory) Remove(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.get(id); err != nil {
		return err
	}
	delete(m.conns, id)
	return nil
}

// Claim implements [Store].
func (m *Memory) Claim(_ context.Context, holder string, n int, lease time.Duration) ([]Claim, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock()
	var due []*memConn
	next := time.Duration(-1)
	for _, c := range m.conns {
		if c.Paused != "" || (c.holder != "" && now.Before(c.until)) {
			continue
		}
		if c.NextDue.After(now) {
			if d := c.NextDue.Sub(now); next < 0 || d < next {
				next = d
			}
			continue
		}
		due = append(due, c)
	}
	slices.SortFunc(due, func(a, b *memConn) int { return a.NextDue.Compare(b.NextDue) })
	var out []Claim
	for _, c := range due[:min(n, len(due))] {
		c.holder, c.until = holder, now.Add(lease)
		c.token++
		out = append(out, Claim{Connection: c.Connection, Holder: holder, Token: c.token})
	}
	if len(due) > n {
		next = 0
	}
	return out, next, nil
}

// held returns the connection of a claim still held.
func (m *Memory) held(cl Claim, now time.Time) *memConn {
	c, ok := m.conns[cl.ID]
	if !ok || c.holder != cl.Holder || c.token != cl.Token || c.Paused != "" || !now.Before(c.until) {
		return nil
	}
	return c
}

// Extend implements [Store].
func (m *Memory) Extend(_ context.Context, holder string, claims []Claim, lease time.Duration) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock()
	var ids []string
	for _, cl := range claims {
		if c := m.held(cl, now); c != nil && cl.Holder == holder {
			c.until = now.Add(lease)
			ids = append(ids, cl.ID)
		}
	}
	return ids, nil
}

// Release implements [Store].
func (m *Memory) Release(_ context.Context, cl Claim, r Result) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.clock()
	c := m.held(cl, now)
	if c == nil {
		return false, nil
	}
	c.Connection = released(c.Connection, r, now)
	c.holder = ""
	return true, nil
}

// released is c after a poll's result r, at now: what every store
// writes in Release.
func released(c Connection, r Result, now time.Time) Connection {
	c.Cursor = r.Cursor
	c.NextDue = now.Add(max(r.Next, 0))
	c.Events += r.Events
	if r.Abandoned {
		return c
	}
	c.Polls++
	c.LastPoll = now
	if r.Failed {
		c.Errors++
		c.LastError = r.Error
	} else {
		c.Errors, c.LastError = 0, ""
	}
	if r.Pause != "" {
		c.Paused, c.Reason = PausedBySystem, r.Pause
	}
	return c
}
