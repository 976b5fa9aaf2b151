package event

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
)

// MarshalText returns "webhook" or "poll"; the zero Via is empty.
func (v Via) MarshalText() ([]byte, error) {
	switch v {
	case 0:
		return nil, nil
	case Webhook, Poll:
		return []byte(v.String()), nil
	}
	return nil, errors.New("event: unknown Via")
}

// UnmarshalText reads what MarshalText writes.
func (v *Via) UnmarshalText(b []byte) error {
	switch string(b) {
	case "":
		*v = 0
	case "webhook":
		*v = Webhook
	case "poll":
		*v = Poll
	default:
		return errors.New("event: via is \"webhook\" or \"poll\", not " + string(b))
	}
	return nil
}

// jsonEvent is an Event's JSON shape, but for the payload.
type jsonEvent struct {
	ID       string            `json:"id"`
	Source   string            `json:"source"`
	Type     string            `json:"type,omitempty"`
	Via      Via               `json:"via,omitzero"`
	Time     time.Time         `json:"time,omitzero"`
	Received time.Time         `json:"received,omitzero"`
	Meta     map[string]string `json:"meta,omitempty"`
	Base64   string            `json:"payload_base64,omitempty"`
	Payload  json.RawMessage   `json:"payload,omitempty"`
}

// MarshalJSON writes e as a person reads it, the shape the relay's feed
// items, the console's API and the CLI share: lower-case keys, via as a
// word, times in RFC 3339 and left out when zero, and the payload as
// JSON ("payload") when it is valid JSON, else as base64
// ("payload_base64"); an empty payload is left out. It is for reading,
// not storage: JSON does not keep a JSON payload's bytes exactly (an
// encoder may re-indent it), and nil and empty payloads read back alike.
// Durable queues use [Event.MarshalBinary].
func (e Event) MarshalJSON() ([]byte, error) {
	j := jsonEvent{ID: e.ID, Source: e.Source, Type: e.Type, Via: e.Via, Time: e.Time, Received: e.Received, Meta: e.Meta}
	switch {
	case len(e.Payload) == 0:
	case json.Valid(e.Payload):
		j.Payload = e.Payload
	default:
		j.Base64 = base64.StdEncoding.EncodeToString(e.Payload)
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (e *Event) UnmarshalJSON(b []byte) error {
	var j jsonEvent
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*e = Event{ID: j.ID, Source: j.Source, Type: j.Type, Via: j.Via, Time: j.Time, Received: j.Received, Meta: j.Meta}
	switch {
	case j.Base64 != "":
		p, err := base64.StdEncoding.DecodeString(j.Base64)
		if err != nil {
			return errors.New("event: payload_base64: " + err.Error())
		}
		e.Payload = p
	case len(j.Payload) > 0:
		e.Payload = []byte(j.Payload)
	}
	return nil
}
