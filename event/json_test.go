package event_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/intakehq/intake/event"
)

// Issue #21, item 14: one JSON shape — lower-case keys, via as a word,
// JSON payloads as JSON, others as base64, zero times left out.
func TestEventJSONShape(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		e    event.Event
		want string
	}{
		{"json payload", event.Event{ID: "evt_1", Source: "stripe", Type: "invoice.paid", Via: event.Webhook, Received: at, Payload: []byte(`{"a":1}`), Meta: map[string]string{"content-type": "application/json"}},
			`{"id":"evt_1","source":"stripe","type":"invoice.paid","via":"webhook","received":"2026-12-03T10:00:00Z","meta":{"content-type":"application/json"},"payload":{"a":1}}`},
		{"binary payload", event.Event{ID: "x", Source: "s", Via: event.Poll, Time: at, Payload: []byte{0, 0xff}},
			`{"id":"x","source":"s","via":"poll","time":"2026-12-03T10:00:00Z","payload_base64":"AP8="}`},
		{"nothing but the key", event.Event{ID: "x", Source: "s"}, `{"id":"x","source":"s"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.e)
			require.NoError(t, err)
			assert.JSONEq(t, tt.want, string(got))
			var back event.Event
			require.NoError(t, json.Unmarshal(got, &back))
			assert.Equal(t, tt.e.ID, back.ID)
			assert.Equal(t, tt.e.Via, back.Via)
			assert.Equal(t, string(tt.e.Payload), string(back.Payload))
			assert.True(t, tt.e.Time.Equal(back.Time) && tt.e.Received.Equal(back.Received))
		})
	}
	var v event.Via
	assert.Error(t, json.Unmarshal([]byte(`"carrier-pigeon"`), &v))
}
