package webhook

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
)

// Paddle returns the verifier of Paddle Billing's webhook signatures,
// given the notification destination's secret key.
//
// Paddle-Signature is "ts=<unix seconds>;h1=<hex>", with one more h1
// entry while a secret rotates; h1 is the HMAC-SHA256 of ts ":" body
// under the secret as given ("pdl_ntfset_…"). The timestamp must be
// within ±5 min. The event's ID, Type and Time are the body's "event_id",
// "event_type" and "occurred_at".
func Paddle(secrets ...string) *Scheme {
	s := newScheme("paddle", secrets, nil, nil, verifyPaddle)
	s.headers = []string{"Paddle-Signature"}
	return s
}

func verifyPaddle(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	hv := first(h, "Paddle-Signature")
	if hv == "" {
		return event.Event{}, missingHeader("Paddle-Signature")
	}
	var ts string
	var set sigSet
	for rest := hv; rest != "" && !set.full(); {
		var item string
		item, rest, _ = strings.Cut(rest, ";")
		k, v, _ := strings.Cut(strings.TrimSpace(item), "=")
		switch k {
		case "ts":
			if ts != "" {
				return event.Event{}, ErrMalformedSignature
			}
			ts = v
		case "h1":
			set.addHex(v)
		}
	}
	if ts == "" || set.n == 0 {
		return event.Event{}, ErrMalformedSignature
	}
	if _, err := s.checkTime(ts); err != nil {
		return event.Event{}, err
	}
	if !set.verify(s.keys, body, ts, ":") {
		return event.Event{}, ErrSignatureMismatch
	}
	e := event.Event{Payload: body}
	err := jsonscan.Object(body, func(k, v []byte) bool {
		switch string(k) {
		case "event_id":
			e.ID, _ = jsonscan.String(v)
		case "event_type":
			e.Type, _ = jsonscan.String(v)
		case "occurred_at":
			e.Time, _ = jsonscan.Time(v)
		}
		return e.ID != "" && e.Type != "" && !e.Time.IsZero()
	})
	if err != nil || e.ID == "" {
		return event.Event{}, malformed(`body is not a JSON event with an "event_id"`)
	}
	return e, nil
}

// SignPaddle returns the Paddle-Signature header's value for body, signed
// with secret at ts.
func SignPaddle(secret string, ts time.Time, body []byte) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	return "ts=" + t + ";h1=" + hex.EncodeToString(newMACKey([]byte(secret), nil).sign(nil, body, t, ":"))
}
