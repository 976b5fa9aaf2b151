//go:build !intake_plant_early_ack

package webhook

import (
	"context"

	"github.com/intakehq/intake/event"
)

// store stores a verified event and returns once it is stored (or not):
// only then does the handler answer. The fault campaign
// (examples/chaos) builds the package with the tag
// intake_plant_early_ack to swap in a defective store, and checks that it
// reports the events so lost.
func store(ctx context.Context, sink event.Sink, e event.Event) error { return sink.Put(ctx, e) }
