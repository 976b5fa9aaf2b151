package webhook

import (
	"encoding/base64"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
)

// Square returns the verifier of Square's webhook signatures, given the
// subscription's signature key.
//
// X-Square-Hmacsha256-Signature is the base64 HMAC-SHA256 of the
// notification URL followed by the body. The URL is the one configured in
// Square's dashboard, exactly: behind a proxy, pin it with
// [Scheme.WithPublicURL]. Square signs no timestamp. The event's ID, Type
// and Time are the body's "event_id", "type" and "created_at".
func Square(signatureKeys ...string) *Scheme {
	s := newRequestScheme("square", signatureKeys, nil, nil, verifySquare)
	s.headers = []string{"X-Square-Hmacsha256-Signature"}
	return s
}

func verifySquare(s *Scheme, r *Request) (event.Event, error) {
	var buf sigBuf
	sig, err := base64Header(&buf, r.Header, "X-Square-Hmacsha256-Signature")
	if err != nil {
		return event.Event{}, err
	}
	u, err := s.signedURL(r)
	if err != nil {
		return event.Event{}, err
	}
	if !verifyAny(s.keys, sig, r.Body, u) {
		return event.Event{}, ErrSignatureMismatch
	}
	e := event.Event{Payload: r.Body}
	err = jsonscan.Object(r.Body, func(k, v []byte) bool {
		switch string(k) {
		case "event_id":
			e.ID, _ = jsonscan.String(v)
		case "type":
			e.Type, _ = jsonscan.String(v)
		case "created_at":
			e.Time, _ = jsonscan.Time(v)
		}
		return e.ID != "" && e.Type != "" && !e.Time.IsZero()
	})
	if err != nil || e.ID == "" {
		return event.Event{}, malformed(`body is not a JSON event with an "event_id"`)
	}
	return e, nil
}

// SignSquare returns the X-Square-Hmacsha256-Signature header's value for
// body sent to notificationURL, signed with key.
func SignSquare(key, notificationURL string, body []byte) string {
	return base64.StdEncoding.EncodeToString(newMACKey([]byte(key), nil).sign(nil, body, notificationURL))
}
