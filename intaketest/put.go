package intaketest

import (
	"context"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
)

// Put puts e into s as a source would: while the error says to try again
// ([event.RetryDelay]: the stream not running yet, its queue full, the
// store down), it waits a little and does; it returns nil once e is
// stored, or the first error that is not worth retrying.
func Put(ctx context.Context, s *intake.Stream, e event.Event) error {
	for {
		err := s.Put(ctx, e)
		if err == nil {
			return nil
		}
		if _, retry := event.RetryDelay(err); !retry {
			return err
		}
		t := time.NewTimer(time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}
