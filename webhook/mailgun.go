package webhook

import (
	"encoding/hex"
	"math"
	"net/http"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
)

// Mailgun returns the verifier of Mailgun's webhook signatures, given the
// HTTP webhook signing key.
//
// Mailgun puts the signature in the JSON body: "signature" holds
// "timestamp" (unix seconds, ±5 min), "token" and "signature", the hex
// HMAC-SHA256 of timestamp followed by token. The signature does not cover
// the rest of the body: within the tolerance, someone who captured a
// delivery could send its signature with other event data. Keep the
// tolerance short, and serve Mailgun over HTTPS. The event's ID, Type and
// Time are "event-data"'s "id", "event" and "timestamp".
func Mailgun(signingKeys ...string) *Scheme {
	return newScheme("mailgun", signingKeys, nil, nil, verifyMailgun)
}

func verifyMailgun(s *Scheme, _ http.Header, body []byte) (event.Event, error) {
	var sigRaw, data []byte
	err := jsonscan.Object(body, func(k, v []byte) bool {
		switch string(k) {
		case "signature":
			sigRaw = v
		case "event-data":
			data = v
		}
		return sigRaw != nil && data != nil
	})
	if err != nil || sigRaw == nil {
		return event.Event{}, missingField("signature")
	}
	var ts, token, sigHex []byte
	_ = jsonscan.Object(sigRaw, func(k, v []byte) bool {
		switch string(k) {
		case "timestamp":
			ts = v
		case "token":
			token = v
		case "signature":
			sigHex = v
		}
		return false
	})
	tsStr, ok1 := jsonscan.String(ts)
	tok, ok2 := jsonscan.String(token)
	sigStr, ok3 := jsonscan.String(sigHex)
	if !ok1 || !ok2 || !ok3 || tok == "" {
		return event.Event{}, ErrMalformedSignature
	}
	if _, err := s.checkTime(tsStr); err != nil {
		return event.Event{}, err
	}
	var buf sigBuf
	sig, valid := decodeHex(&buf, sigStr)
	if !valid {
		return event.Event{}, ErrMalformedSignature
	}
	if !verifyAny(s.keys, sig, nil, tsStr, tok) {
		return event.Event{}, ErrSignatureMismatch
	}
	e := event.Event{Payload: body}
	_ = jsonscan.Object(data, func(k, v []byte) bool {
		switch string(k) {
		case "id":
			e.ID, _ = jsonscan.String(v)
		case "event":
			e.Type, _ = jsonscan.String(v)
		case "timestamp":
			if f, ok := jsonscan.Float(v); ok && f > 0 && f < math.MaxInt32*4 {
				sec, frac := math.Modf(f)
				e.Time = time.Unix(int64(sec), int64(frac*1e9))
			}
		}
		return false
	})
	return e, nil
}

// MailgunSignature returns the "signature" value Mailgun puts in a body
// whose timestamp and token are these, signed with key.
func MailgunSignature(key, timestamp, token string) string {
	return hex.EncodeToString(newMACKey([]byte(key), nil).sign(nil, nil, timestamp, token))
}
