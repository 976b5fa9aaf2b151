package redis

import (
	"context"
	"time"
)

// Adoption wake-ups across holders: a holder that gives events back
// (Extend with a lease of zero), an operator's Replay, and a holder that
// closes PUBLISH on the prefix's "adopt" channel; a queue whose stream
// asked for AdoptReady subscribes and passes the signal on, so that
// another replica adopts at once rather than at its next look. A holder
// that was killed sends nothing: its heartbeat lapses and the stream
// looks every second.

func (q *Queue) adoptChannel() string { return q.prefix + "adopt" }

// AdoptReady implements [dedupe.Waker]. The first call subscribes (and
// waits up to 5 seconds for the subscription); Close ends it.
func (q *Queue) AdoptReady() <-chan struct{} {
	q.wakeOnce.Do(func() {
		q.wakeCh = make(chan struct{}, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ps := q.c.Subscribe(ctx, q.adoptChannel())
		if _, err := ps.Receive(ctx); err != nil { // the subscription's confirmation
			_ = ps.Close()
			return // no wake-ups: the stream still looks every second
		}
		q.pubsub = ps
		q.wakeDone = make(chan struct{})
		go func() {
			defer close(q.wakeDone)
			for m := range ps.Channel() {
				if m.Payload == q.holder { // its own giving back
					continue
				}
				select {
				case q.wakeCh <- struct{}{}:
				default:
				}
			}
		}()
	})
	return q.wakeCh
}

// notifyAdopt tells the other holders there may be events to adopt. It
// is best effort: they look every second anyway.
func (q *Queue) notifyAdopt(ctx context.Context) {
	_ = q.c.Publish(ctx, q.adoptChannel(), q.holder).Err()
}

func (q *Queue) stopAdoptListener() {
	if q.pubsub != nil {
		_ = q.pubsub.Close()
		<-q.wakeDone
	}
}
