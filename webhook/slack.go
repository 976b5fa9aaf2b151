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

// Slack returns the verifier of Slack's request signatures.
//
// X-Slack-Signature is "v0=" and the hex HMAC-SHA256 of "v0:" timestamp
// ":" body under the app's signing secret, with the timestamp from
// X-Slack-Request-Timestamp. For Events API bodies the event's ID is
// "event_id", its Type the inner event's "type" (or the outer one), and
// its Time "event_time"; other bodies (slash commands, interactivity) get
// an id derived from their content. A url_verification request is answered
// with its challenge, as Slack expects, and produces no event.
func Slack(secrets ...string) *Scheme {
	s := newScheme("slack", secrets, nil, nil, verifySlack)
	s.headers = []string{"X-Slack-Signature", "X-Slack-Request-Timestamp"}
	return s
}

// verifyV0 checks the signature Slack introduced and Zoom copied: the
// sigHeader is "v0=" and the hex HMAC of "v0:" timestamp ":" body, the
// timestamp (unix seconds) in tsHeader. It returns the timestamp.
func verifyV0(s *Scheme, h http.Header, sigHeader, tsHeader string, body []byte) (string, error) {
	hv, ts := first(h, sigHeader), first(h, tsHeader)
	switch {
	case hv == "":
		return "", missingHeader(sigHeader)
	case ts == "":
		return "", missingHeader(tsHeader)
	}
	value, ok := strings.CutPrefix(hv, "v0=")
	if !ok {
		return "", ErrMalformedSignature
	}
	if _, err := s.checkTime(ts); err != nil {
		return "", err
	}
	var buf sigBuf
	sig, valid := decodeHex(&buf, value)
	if !valid {
		return "", ErrMalformedSignature
	}
	if !verifyAny(s.keys, sig, body, "v0:", ts, ":") {
		return "", ErrSignatureMismatch
	}
	return ts, nil
}

func verifySlack(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	if _, err := verifyV0(s, h, "X-Slack-Signature", "X-Slack-Request-Timestamp", body); err != nil {
		return event.Event{}, err
	}
	// Collect the raw values first and convert only what is used: the
	// inner event's type wins over the outer one.
	e := event.Event{Payload: body}
	var idRaw, typeRaw, innerRaw, challengeRaw []byte
	_ = jsonscan.Object(body, func(k, v []byte) bool {
		switch string(k) {
		case "event_id":
			idRaw = v
		case "type":
			typeRaw = v
		case "event_time":
			if n, ok := jsonscan.Int(v); ok {
				e.Time = time.Unix(n, 0)
			}
		case "challenge":
			challengeRaw = v
		case "event":
			innerRaw = v
		}
		return false
	})
	if string(typeRaw) == `"url_verification"` {
		challenge, _ := jsonscan.String(challengeRaw)
		return event.Event{}, textReply(challenge)
	}
	if innerRaw != nil {
		_ = jsonscan.Object(innerRaw, func(k, v []byte) bool {
			if string(k) == "type" {
				typeRaw = v
				return true
			}
			return false
		})
	}
	e.ID, _ = jsonscan.String(idRaw)
	e.Type, _ = jsonscan.String(typeRaw)
	if e.ID == "" {
		e.ID = event.ContentID(e)
	}
	return e, nil
}

// SignSlack returns the X-Slack-Signature and X-Slack-Request-Timestamp
// headers for body, signed with secret at ts.
func SignSlack(secret string, ts time.Time, body []byte) http.Header {
	return signV0(secret, ts, body, "X-Slack-Signature", "X-Slack-Request-Timestamp")
}

// signV0 returns the headers verifyV0 checks: body signed with secret at
// ts.
func signV0(secret string, ts time.Time, body []byte, sigHeader, tsHeader string) http.Header {
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := newMACKey([]byte(secret), nil).sign(nil, body, "v0:", t, ":")
	h := http.Header{}
	h.Set(sigHeader, "v0="+hex.EncodeToString(mac))
	h.Set(tsHeader, t)
	return h
}
