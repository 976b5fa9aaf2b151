//go:build intake_plant_early_ack

package webhook

import (
	"context"

	"github.com/intakehq/intake/event"
)

// store is a planted defect, built only with the tag
// intake_plant_early_ack: it answers before the event is stored (and
// forgets a failed store), so a crash or a store outage loses events that
// were acknowledged. The fault campaign must report them lost.
func store(ctx context.Context, sink event.Sink, e event.Event) error {
	go func() { _ = sink.Put(context.WithoutCancel(ctx), e) }()
	return nil
}
