package intake

import (
	"time"

	"github.com/intakehq/intake/dedupe"
)

// ReplayStore returns the store in which a webhook handler's replay guard
// keeps its keys, and how long: the stream's durable store or queue, when
// it has one (the queue itself where it is also a [dedupe.Store], as the
// SQLite and Postgres backends are, or its [dedupe.KeyStorer] key store,
// as Redis's queue has), with the stream's retention
// ([WithRetention]). It returns a nil store when the stream keeps its keys
// in its default memory store: the handler then keeps a memory guard of
// its own, which lasts as long as the process.
//
// The stream's [Stream.Run] passes itself to each source, so a
// [github.com/intakehq/intake/webhook.Handler] added to the stream finds
// it there (it is a webhook.ReplayStorer) and uses it unless given a guard
// of its own.
func (s *Stream) ReplayStore() (dedupe.Store, time.Duration) {
	switch {
	case s.cfg.queue != nil:
		if st, ok := s.cfg.queue.(dedupe.Store); ok {
			return st, s.cfg.retention
		}
		if ks, ok := s.cfg.queue.(dedupe.KeyStorer); ok {
			return ks.KeyStore(), s.cfg.retention
		}
	case !s.memoryStore:
		return s.cfg.store, s.cfg.retention
	}
	return nil, 0
}
