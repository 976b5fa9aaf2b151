package nats

import (
	"errors"
	"testing"
	"time"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/dedupe/dedupetest"
)

// An adoption's write can be stored and its reply lost (a connection cut
// as the reply comes back): the events it took stay held by this live
// holder, which never got them, and no other holder adopts them while its
// heartbeat lives. Adopt gives them back at its next call (the token of
// the lost write says which), so they are adopted, here or elsewhere,
// once. The same as the Postgres and Redis queues' test of that name.
func TestLostAdoptionReplyIsGivenBack(t *testing.T) {
	open := sharedQueue(t, WithHeartbeat(time.Second))
	dedupetest.RunLostAdoptionReply(t, func() dedupe.Queue { return open() }, func(q dedupe.Queue, on bool) {
		q.(*Queue).adoptReplyLost = nil
		if on {
			q.(*Queue).adoptReplyLost = func() error { return errors.New("connection reset as the reply came back") }
		}
	})
}
