package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
)

// The fault campaign found it for claims (a reply lost after the commit
// left the event held by a live holder that did not have it); an
// adoption's reply can be lost the same way: the events it took stay held
// by this live holder, which never got them, and no other holder adopts
// them while it lives. Adopt now gives them back at its next call, so
// they are adopted (here or elsewhere) once.
func TestLostAdoptionReplyIsGivenBack(t *testing.T) {
	pool := scanPool(t)
	ctx := context.Background()
	prefix := "lostadopt" + newLockIDString() + "_"
	open := func() *Backend {
		b, err := New(ctx, pool, WithPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	t.Cleanup(func() {
		dropPrefix(ctx, pool, prefix)
	})
	dedupetest.RunLostAdoptionReply(t, func() dedupe.Queue { return open() }, func(q dedupe.Queue, on bool) {
		q.(*Backend).adoptReplyLost = nil
		if on {
			q.(*Backend).adoptReplyLost = func() error { return errors.New("connection reset as the reply came back") }
		}
	})
}
