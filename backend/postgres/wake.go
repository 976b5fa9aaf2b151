package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Adoption wake-ups across replicas: a holder that gives events back
// (Extend with a lease of zero), an operator's Replay, and a holder that
// closes send NOTIFY on the prefix's "adopt" channel; every backend whose
// stream asked for AdoptReady LISTENs on a connection of its own and
// passes the signal on, so that another replica adopts at once rather
// than at its next look. A holder that crashed sends nothing: the stream
// looks every second.

// adoptChannel is the NOTIFY channel of the backend's prefix.
func (b *Backend) adoptChannel() string { return b.prefix + "adopt" }

// AdoptReady implements [dedupe.Waker]. The first call starts the
// listener, which Close stops, and waits (up to 5 seconds) until it
// listens, so that what is given back after it returns is not missed.
func (b *Backend) AdoptReady() <-chan struct{} {
	b.wakeOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		b.wakeCh = make(chan struct{}, 1)
		b.wakeStop = cancel
		b.wakeDone = make(chan struct{})
		listening := make(chan struct{})
		go b.listenAdopt(ctx, listening)
		select {
		case <-listening:
		case <-time.After(5 * time.Second):
		}
	})
	return b.wakeCh
}

func (b *Backend) signalAdopt() {
	select {
	case b.wakeCh <- struct{}{}:
	default:
	}
}

// listenAdopt waits for notifications until ctx ends; after losing its
// connection it signals once (something may have been missed) and
// reconnects after a second.
func (b *Backend) listenAdopt(ctx context.Context, listening chan struct{}) {
	defer close(b.wakeDone)
	for ctx.Err() == nil {
		c, err := b.pool.Acquire(ctx)
		if err == nil {
			conn := c.Hijack()
			if _, err = conn.Exec(ctx, "LISTEN "+pgx.Identifier{b.adoptChannel()}.Sanitize()); err == nil {
				if listening != nil {
					close(listening)
					listening = nil
				}
				for {
					n, err := conn.WaitForNotification(ctx)
					if err != nil {
						break
					}
					if n.Payload != b.holder { // not its own giving back
						b.signalAdopt()
					}
				}
			}
			_ = conn.Close(context.Background())
		}
		if ctx.Err() != nil {
			return
		}
		b.signalAdopt()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// notifyAdopt tells the other backends that there may be events to
// adopt. It is best effort: they look every second anyway.
func (b *Backend) notifyAdopt(ctx context.Context) {
	_, _ = b.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, b.adoptChannel(), b.holder)
}

func (b *Backend) stopAdoptListener() {
	if b.wakeStop != nil {
		b.wakeStop()
		<-b.wakeDone
	}
}
