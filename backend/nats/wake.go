package nats

import "github.com/nats-io/nats.go"

// Adoption wake-ups across holders: a holder that gives records back
// (Extend with a lease of zero), an operator's Replay, and a holder that
// closes publish their id on intake.N.wake (core NATS, not stored); a
// queue whose stream asked for AdoptReady subscribes and passes the
// signal on, so that another replica adopts at once rather than at its
// next look. A killed holder sends nothing: its heartbeat lapses and the
// stream looks every second.

// AdoptReady implements [dedupe.Waker]. The first call subscribes; Close
// ends the subscription.
func (q *Queue) AdoptReady() <-chan struct{} {
	q.wakeOnce.Do(func() {
		q.wakeCh = make(chan struct{}, 1)
		sub, err := q.nc.Subscribe(q.root+".wake", func(m *nats.Msg) {
			if string(m.Data) == q.holder { // its own giving back
				return
			}
			select {
			case q.wakeCh <- struct{}{}:
			default:
			}
		})
		if err != nil {
			return // no wake-ups: the stream still looks every second
		}
		_ = q.nc.Flush() // the subscription is on the server before the first give-back
		q.wakeSub = sub
	})
	return q.wakeCh
}

// notifyAdopt tells the other holders there may be records to adopt. It
// is best effort: they look every second anyway.
func (q *Queue) notifyAdopt() {
	_ = q.nc.Publish(q.root+".wake", []byte(q.holder))
}
