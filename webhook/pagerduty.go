package webhook

import (
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
)

// PagerDuty returns the verifier of PagerDuty's V3 webhook signatures,
// given the subscription's secret.
//
// X-PagerDuty-Signature is a comma-separated list of "v1=<hex>" entries,
// each a HMAC-SHA256 of the body (several while a secret rotates); entries
// of other versions are ignored. PagerDuty signs no timestamp; the body
// carries the event's id, so a replay is a duplicate. The event's ID, Type
// and Time are the body's event "id", "event_type" and "occurred_at".
func PagerDuty(secrets ...string) *Scheme {
	s := newScheme("pagerduty", secrets, nil, nil, verifyPagerDuty)
	s.headers = []string{"X-Pagerduty-Signature"}
	return s
}

func verifyPagerDuty(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	values := h["X-Pagerduty-Signature"]
	if len(values) == 0 || values[0] == "" {
		return event.Event{}, missingHeader("X-PagerDuty-Signature")
	}
	var set sigSet
	saw := false
	for _, hv := range values {
		for rest := hv; rest != "" && !set.full(); {
			var item string
			item, rest, _ = strings.Cut(rest, ",")
			if v, ok := strings.CutPrefix(strings.TrimSpace(item), "v1="); ok {
				saw = true
				set.addHex(v)
			}
		}
	}
	switch {
	case !saw:
		return event.Event{}, ErrMalformedSignature
	case !set.verify(s.keys, body):
		return event.Event{}, ErrSignatureMismatch
	}
	e := event.Event{Payload: body}
	inner, _ := jsonscan.Field(body, "event")
	err := jsonscan.Object(inner, func(k, v []byte) bool {
		switch string(k) {
		case "id":
			e.ID, _ = jsonscan.String(v)
		case "event_type":
			e.Type, _ = jsonscan.String(v)
		case "occurred_at":
			e.Time, _ = jsonscan.Time(v)
		}
		return e.ID != "" && e.Type != "" && !e.Time.IsZero()
	})
	if err != nil || e.ID == "" {
		return event.Event{}, malformed(`body has no "event" with an "id"`)
	}
	return e, nil
}

// SignPagerDuty returns the X-PagerDuty-Signature header's value for body,
// signed with secret.
func SignPagerDuty(secret string, body []byte) string {
	return "v1=" + hex.EncodeToString(newMACKey([]byte(secret), nil).sign(nil, body))
}
