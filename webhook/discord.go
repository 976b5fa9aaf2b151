package webhook

import (
	"crypto/ed25519"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
)

// Discord returns the verifier of Discord's interactions endpoint and
// webhook events, given the application's public key (hex, as the
// developer portal shows it).
//
// X-Signature-Ed25519 is the hex Ed25519 signature of
// X-Signature-Timestamp (unix seconds, ±5 min) followed by the body.
// Discord checks an endpoint by sending signed PINGs and bad signatures;
// the handler answers the PINGs itself: an interaction PING with
// {"type":1}, a webhook-event PING with 204. An interaction's ID is its
// "id" and its Type its kind (APPLICATION_COMMAND, MESSAGE_COMPONENT,
// APPLICATION_COMMAND_AUTOCOMPLETE, MODAL_SUBMIT); a webhook event's Type
// is its event type and its ID derived from the content.
//
// Discord wants an interaction answered within 3 seconds with a response,
// and intake processes events later: a stored command is answered
// {"type":5} (a deferred message), a component or a modal {"type":6} (a
// deferred update), to be followed up through the interaction's token. A
// webhook event is answered 204. An autocomplete cannot be deferred: it
// gets the usual 202, which Discord shows as failed; answer autocompletes
// with a handler of your own.
func Discord(publicKeys ...string) *Scheme {
	s := newScheme("discord", nil, nil, nil, verifyDiscord)
	s.bad = nil
	s.addEd25519Keys(publicKeys, hex.DecodeString, "64 hex digits")
	if s.bad != nil {
		s.edKeys = nil
	}
	s.headers = []string{"X-Signature-Ed25519", "X-Signature-Timestamp"}
	s.ack = discordAck
	return s
}

var discordKinds = [...]string{2: "APPLICATION_COMMAND", 3: "MESSAGE_COMPONENT", 4: "APPLICATION_COMMAND_AUTOCOMPLETE", 5: "MODAL_SUBMIT"}

func verifyDiscord(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	hv, ts := first(h, "X-Signature-Ed25519"), first(h, "X-Signature-Timestamp")
	switch {
	case hv == "":
		return event.Event{}, missingHeader("X-Signature-Ed25519")
	case ts == "":
		return event.Event{}, missingHeader("X-Signature-Timestamp")
	}
	var sig [ed25519.SignatureSize]byte
	if !decodeHexInto(sig[:], hv) {
		return event.Event{}, ErrMalformedSignature
	}
	if _, err := s.checkTime(ts); err != nil {
		return event.Event{}, err
	}
	if !verifyEd25519(s.edKeys, sig[:], body, ts) {
		return event.Event{}, ErrSignatureMismatch
	}
	var kind int64 = -1
	var idRaw, inner []byte
	err := jsonscan.Object(body, func(k, v []byte) bool {
		switch string(k) {
		case "type":
			kind, _ = jsonscan.Int(v)
		case "id":
			idRaw = v
		case "event":
			inner = v
		}
		return false
	})
	if err != nil || kind < 0 {
		return event.Event{}, malformed(`body is not a JSON object with a "type"`)
	}
	switch {
	case kind == 0: // a webhook-event PING
		return event.Event{}, &Reply{Status: http.StatusNoContent}
	case kind == 1 && inner == nil: // an interaction PING
		return event.Event{}, &Reply{Status: http.StatusOK, ContentType: "application/json", Body: []byte(`{"type":1}`)}
	case kind == 1: // a webhook event
		e := event.Event{Payload: body}
		_ = jsonscan.Object(inner, func(k, v []byte) bool {
			switch string(k) {
			case "type":
				e.Type, _ = jsonscan.String(v)
			case "timestamp":
				e.Time, _ = jsonscan.Time(v)
			}
			return false
		})
		return e, nil
	}
	e := event.Event{Payload: body}
	if kind < int64(len(discordKinds)) && discordKinds[kind] != "" {
		e.Type = discordKinds[kind]
	} else {
		e.Type = "interaction:" + strconv.FormatInt(kind, 10)
	}
	if e.ID, _ = jsonscan.String(idRaw); e.ID == "" {
		return event.Event{}, malformed(`interaction has no "id"`)
	}
	return e, nil
}

// discordAck is Discord's answer to a stored event: deferred responses
// for interactions, 204 for webhook events.
func discordAck(e event.Event) *Reply {
	switch e.Type {
	case "APPLICATION_COMMAND":
		return &Reply{Status: http.StatusOK, ContentType: "application/json", Body: []byte(`{"type":5}`)}
	case "MESSAGE_COMPONENT", "MODAL_SUBMIT":
		return &Reply{Status: http.StatusOK, ContentType: "application/json", Body: []byte(`{"type":6}`)}
	case "APPLICATION_COMMAND_AUTOCOMPLETE":
		return nil
	}
	if strings.HasPrefix(e.Type, "interaction:") { // a kind Discord added since
		return nil
	}
	return &Reply{Status: http.StatusNoContent} // a webhook event
}

// SignDiscord returns the X-Signature-Ed25519 and X-Signature-Timestamp
// headers for body, signed at ts with the application's private key.
func SignDiscord(key ed25519.PrivateKey, ts time.Time, body []byte) http.Header {
	t := strconv.FormatInt(ts.Unix(), 10)
	sig := ed25519.Sign(key, append([]byte(t), body...))
	h := http.Header{}
	h.Set("X-Signature-Ed25519", hex.EncodeToString(sig))
	h.Set("X-Signature-Timestamp", t)
	return h
}
