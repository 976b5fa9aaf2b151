// Package logsample logs repeated records at most once a second per
// reason, so that an outage or a flood of bad input cannot flood the logs;
// each record says how many were left out since the last one.
package logsample

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Sampler rate-limits records by reason. The zero value is ready to use
// and is safe for concurrent use.
type Sampler struct {
	m sync.Map // reason → *sample
}

type sample struct {
	last       atomic.Int64 // unix nanoseconds of the last record
	suppressed atomic.Int64 // records left out since
}

// Log writes msg with args to l at level, with "reason" and
// "suppressed_since_last", unless a record for reason was written less
// than a second ago; then it only counts it.
func (s *Sampler) Log(l *slog.Logger, level slog.Level, reason, msg string, args ...any) {
	v, ok := s.m.Load(reason)
	if !ok {
		v, _ = s.m.LoadOrStore(reason, &sample{})
	}
	sm := v.(*sample)
	now := time.Now().UnixNano()
	last := sm.last.Load()
	if (last != 0 && now-last < int64(time.Second)) || !sm.last.CompareAndSwap(last, now) {
		sm.suppressed.Add(1)
		return
	}
	args = append(args, "reason", reason, "suppressed_since_last", sm.suppressed.Swap(0))
	l.Log(context.Background(), level, msg, args...)
}
