package webhook

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
)

// Zoom returns the verifier of Zoom's webhooks, given the app's secret
// token.
//
// X-Zm-Signature is "v0=" and the hex HMAC-SHA256 of "v0:" timestamp ":"
// body, with the timestamp from X-Zm-Request-Timestamp (unix seconds, ±5
// min). Zoom validates the endpoint with a signed endpoint.url_validation
// event; the handler answers it itself with the plainToken and its
// encryptedToken (the hex HMAC-SHA256 of the plainToken under the secret
// that verified the request). The event's Type is the body's "event", its
// Time "event_ts" (milliseconds), its ID derived from the content (Zoom
// sends none).
func Zoom(secretTokens ...string) *Scheme {
	s := newScheme("zoom", secretTokens, nil, nil, verifyZoom)
	s.headers = []string{"X-Zm-Signature", "X-Zm-Request-Timestamp"}
	return s
}

func verifyZoom(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	ts, err := verifyV0(s, h, "X-Zm-Signature", "X-Zm-Request-Timestamp", body)
	if err != nil {
		return event.Event{}, err
	}
	e := event.Event{Payload: body}
	var payload []byte
	err = jsonscan.Object(body, func(k, v []byte) bool {
		switch string(k) {
		case "event":
			e.Type, _ = jsonscan.String(v)
		case "event_ts":
			if n, ok := jsonscan.Int(v); ok {
				e.Time = time.UnixMilli(n)
			}
		case "payload":
			payload = v
		}
		return false
	})
	if err != nil || e.Type == "" {
		return event.Event{}, malformed(`body is not a JSON object with an "event"`)
	}
	if e.Type == "endpoint.url_validation" {
		raw, _ := jsonscan.Field(payload, "plainToken")
		plain, _ := jsonscan.String(raw)
		if plain == "" {
			return event.Event{}, malformed("url_validation without a plainToken")
		}
		// The key that verified the request answers it.
		var buf sigBuf
		sig, _ := decodeHex(&buf, strings.TrimPrefix(first(h, "X-Zm-Signature"), "v0="))
		for _, k := range s.keys {
			if verifyAny([]*macKey{k}, sig, body, "v0:", ts, ":") {
				reply, _ := json.Marshal(map[string]string{
					"plainToken":     plain,
					"encryptedToken": hex.EncodeToString(k.sign(nil, []byte(plain))),
				})
				return event.Event{}, &Reply{Status: http.StatusOK, ContentType: "application/json", Body: reply}
			}
		}
	}
	return e, nil
}

// SignZoom returns the X-Zm-Signature and X-Zm-Request-Timestamp headers
// for body, signed with secret at ts.
func SignZoom(secret string, ts time.Time, body []byte) http.Header {
	return signV0(secret, ts, body, "X-Zm-Signature", "X-Zm-Request-Timestamp")
}
