//go:build intake_plant_early_ack

package webhook

import (
	"context"
	"time"

	"github.com/intakehq/intake/event"
)

// store is a planted defect, built only with the tag
// intake_plant_early_ack: a write-behind store that answers at once and
// stores the event 200 ms later (and forgets a failed store), so a crash
// or a store outage loses events that were acknowledged. The fault
// campaign must report them lost.
func store(ctx context.Context, sink event.Sink, e event.Event) error {
	go func() {
		time.Sleep(200 * time.Millisecond)
		_ = sink.Put(context.WithoutCancel(ctx), e)
	}()
	return nil
}
