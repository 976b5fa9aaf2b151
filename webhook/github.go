package webhook

import (
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/intakehq/intake/event"
)

// GitHub returns the verifier of GitHub's webhook signatures.
//
// X-Hub-Signature-256 is "sha256=" and the hex HMAC-SHA256 of the body
// under the webhook's secret. GitHub signs no timestamp, so a captured
// delivery can be replayed; the idempotency store makes the replay a
// duplicate within the retention window. The event's ID is
// X-GitHub-Delivery (required) and its Type X-GitHub-Event.
func GitHub(secrets ...string) *Scheme {
	return newScheme("github", secrets, nil, nil, verifyGitHub)
}

func verifyGitHub(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	hv := first(h, "X-Hub-Signature-256")
	if hv == "" {
		return event.Event{}, ErrMissingSignature
	}
	value, ok := strings.CutPrefix(hv, "sha256=")
	if !ok {
		return event.Event{}, ErrMalformedSignature
	}
	var buf sigBuf
	sig, valid := decodeHex(&buf, value)
	if !valid {
		return event.Event{}, ErrMalformedSignature
	}
	if !verifyAny(s.keys, sig, body) {
		return event.Event{}, ErrSignatureMismatch
	}
	id := first(h, "X-Github-Delivery")
	if id == "" {
		return event.Event{}, ErrMalformed
	}
	return event.Event{ID: id, Type: first(h, "X-Github-Event"), Payload: body}, nil
}

// SignGitHub returns the X-Hub-Signature-256, X-GitHub-Delivery and
// X-GitHub-Event headers for body, signed with secret.
func SignGitHub(secret, delivery, eventType string, body []byte) http.Header {
	mac := newMACKey([]byte(secret), nil).sign(nil, body)
	h := http.Header{}
	h.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac))
	h.Set("X-GitHub-Delivery", delivery)
	h.Set("X-GitHub-Event", eventType)
	return h
}
