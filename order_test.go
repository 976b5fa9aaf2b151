package intake_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
)

// TestOrderedInMemory: one process with the in-memory store keeps order
// per object (intaketest.RunOrdered).
func TestOrderedInMemory(t *testing.T) {
	intaketest.RunOrdered(t, 1, func(t *testing.T, n int) []dedupe.Queue {
		if n != 1 {
			t.Fatalf("the in-memory store is one process's, not %d", n)
		}
		return []dedupe.Queue{nil}
	})
}

// TestOrderKeyLeavesTheCallersMetaAlone: the stream sets the order key in
// a copy of the event's Meta, and keeps a source's own key.
func TestOrderKeyLeavesTheCallersMetaAlone(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet), intake.WithOrderKey(func(e event.Event) string { return "obj-" + e.ID }))
	got := make(chan event.Event, 2)
	s.Handle(func(_ context.Context, e event.Event) error { got <- e; return nil })
	run(t, s)
	meta := map[string]string{"a": "b"}
	require.NoError(t, s.Put(context.Background(), event.Event{Source: "s", ID: "1", Meta: meta}))
	require.NoError(t, s.Put(context.Background(), event.Event{Source: "s", ID: "2", Meta: map[string]string{event.MetaOrder: "mine"}}))
	keys := map[string]string{}
	for range 2 {
		e := <-got
		keys[e.ID] = e.Meta[event.MetaOrder]
	}
	assert.Equal(t, map[string]string{"1": "obj-1", "2": "mine"}, keys)
	assert.Equal(t, map[string]string{"a": "b"}, meta, "the caller's Meta was changed")
}

// TestSkipStaleWithoutVersionPanics: WithSkipStale on a stream with no
// versions is a mistake said at once.
func TestSkipStaleWithoutVersionPanics(t *testing.T) {
	s := intake.New(intake.WithLogger(quiet))
	assert.PanicsWithValue(t, "intake: WithSkipStale without WithVersion: the stream has no versions to compare", func() {
		s.Handle(func(context.Context, event.Event) error { return nil }, intake.WithSkipStale())
	})
}
