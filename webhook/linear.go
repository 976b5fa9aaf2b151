package webhook

import (
	"encoding/hex"
	"net/http"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
)

// LinearTolerance is how far Linear's webhookTimestamp may be from now:
// Linear tells receivers to refuse a delivery more than a minute old.
const LinearTolerance = time.Minute

// Linear returns the verifier of Linear's webhook signatures, given the
// webhook's signing secret.
//
// Linear-Signature is the hex HMAC-SHA256 of the body. The timestamp is
// in the signed body, "webhookTimestamp" (unix milliseconds), and must be
// within ±1 minute. The event's ID is Linear-Delivery, its Type
// Linear-Event (Issue, Comment, …), its Time the timestamp. Since the id
// header is not signed, the replay guard is on by default.
func Linear(secrets ...string) *Scheme {
	s := newScheme("linear", secrets, nil, nil, verifyLinear)
	s.tolerance = LinearTolerance
	s.headers = []string{"Linear-Signature", "Linear-Delivery", "Linear-Event"}
	s.guardDefault = true
	return s
}

func verifyLinear(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	if err := verifyPrefixedHex(s, h, "Linear-Signature", "", body); err != nil {
		return event.Event{}, err
	}
	raw, _ := jsonscan.Field(body, "webhookTimestamp")
	ms, ok := jsonscan.Int(raw)
	if !ok {
		return event.Event{}, malformed(`body has no numeric "webhookTimestamp"`)
	}
	at, err := s.checkTimeAt(time.UnixMilli(ms))
	if err != nil {
		return event.Event{}, err
	}
	return event.Event{ID: first(h, "Linear-Delivery"), Type: first(h, "Linear-Event"), Time: at, Payload: body}, nil
}

// SignLinear returns the Linear-Signature header's value for body, signed
// with secret.
func SignLinear(secret string, body []byte) string {
	return hex.EncodeToString(newMACKey([]byte(secret), nil).sign(nil, body))
}
