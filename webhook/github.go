package webhook

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"net/url"
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
	s := newScheme("github", secrets, nil, nil, verifyGitHub)
	s.headers = []string{"X-Hub-Signature-256", "X-Github-Delivery", "X-Github-Event", "Content-Type"}
	s.guardDefault = true
	return s
}

func verifyGitHub(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	hv := first(h, "X-Hub-Signature-256")
	if hv == "" {
		return event.Event{}, missingHeader("X-Hub-Signature-256")
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
		return event.Event{}, malformed("missing X-GitHub-Delivery header")
	}
	e := event.Event{ID: id, Type: first(h, "X-Github-Event"), Payload: body}
	if ct, _, _ := strings.Cut(first(h, "Content-Type"), ";"); strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded") &&
		!jsonObject(body) {
		// A hook set to form encoding: the signature covers these raw
		// bytes, and the JSON is the payload field. A body that is a JSON
		// object is JSON whatever the header says (curl's default
		// Content-Type is the form one).
		form, err := url.ParseQuery(string(body))
		if err != nil || !form.Has("payload") {
			return event.Event{}, malformed("form-encoded body without a payload field")
		}
		e.Payload = []byte(form.Get("payload"))
	}
	return e, nil
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

// jsonObject reports whether body, after leading white space, opens a
// JSON object: a form body never does ("payload=…").
func jsonObject(body []byte) bool {
	b := bytes.TrimLeft(body, " \t\r\n")
	return len(b) > 0 && b[0] == '{'
}
