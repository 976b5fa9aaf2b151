package webhook

import (
	"crypto/sha1"
	"encoding/hex"
	"hash"
	"net/http"
	"strings"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
)

// verifyPrefixedHex checks a header of the form prefix and the hex MAC of
// the body, as GitHub's X-Hub-Signature-256 and its imitators write it.
func verifyPrefixedHex(s *Scheme, h http.Header, header, prefix string, body []byte) error {
	hv := first(h, header)
	if hv == "" {
		return missingHeader(header)
	}
	value, ok := strings.CutPrefix(hv, prefix)
	if !ok {
		return ErrMalformedSignature
	}
	var buf sigBuf
	sig, valid := decodeHex(&buf, value)
	if !valid {
		return ErrMalformedSignature
	}
	if !verifyAny(s.keys, sig, body) {
		return ErrSignatureMismatch
	}
	return nil
}

// Intercom returns the verifier of Intercom's webhook signatures.
//
// X-Hub-Signature is "sha1=" and the hex HMAC-SHA1 of the body under the
// app's client secret. Intercom signs no timestamp. The event's ID, Type
// and Time are the notification's "id", "topic" and "created_at".
func Intercom(clientSecrets ...string) *Scheme {
	s := newScheme("intercom", clientSecrets, nil, sha1.New, verifyIntercom)
	s.headers = []string{"X-Hub-Signature"}
	return s
}

func verifyIntercom(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	if err := verifyPrefixedHex(s, h, "X-Hub-Signature", "sha1=", body); err != nil {
		return event.Event{}, err
	}
	e := event.Event{Payload: body}
	err := jsonscan.Object(body, func(k, v []byte) bool {
		switch string(k) {
		case "id":
			e.ID, _ = jsonscan.String(v)
		case "topic":
			e.Type, _ = jsonscan.String(v)
		case "created_at":
			if n, ok := jsonscan.Int(v); ok {
				e.Time = time.Unix(n, 0)
			}
		}
		return e.ID != "" && e.Type != "" && !e.Time.IsZero()
	})
	if err != nil || e.ID == "" {
		return event.Event{}, malformed(`body is not a JSON notification with an "id"`)
	}
	return e, nil
}

// Bitbucket returns the verifier of Bitbucket's webhook signatures (Cloud,
// and Data Center/Server).
//
// X-Hub-Signature is "sha256=" and the hex HMAC-SHA256 of the body under
// the webhook's secret. Bitbucket signs no timestamp, so the replay guard
// is on by default (see [WithReplayGuard]). The event's ID is
// X-Request-UUID (Cloud) or X-Request-Id (Data Center), else derived from
// the content; its Type is X-Event-Key.
func Bitbucket(secrets ...string) *Scheme {
	s := newScheme("bitbucket", secrets, nil, nil, verifyBitbucket)
	s.headers = []string{"X-Hub-Signature", "X-Request-Uuid", "X-Request-Id", "X-Event-Key"}
	s.guardDefault = true
	return s
}

func verifyBitbucket(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	if err := verifyPrefixedHex(s, h, "X-Hub-Signature", "sha256=", body); err != nil {
		return event.Event{}, err
	}
	id := first(h, "X-Request-Uuid")
	if id == "" {
		id = first(h, "X-Request-Id")
	}
	return event.Event{ID: id, Type: first(h, "X-Event-Key"), Payload: body}, nil
}

// SignHubSignature returns prefix and the hex HMAC of body under secret
// with the hash hf (nil: SHA-256): the value of an X-Hub-Signature or
// X-Hub-Signature-256 header, as Meta, Intercom and Bitbucket send it.
func SignHubSignature(hf func() hash.Hash, prefix, secret string, body []byte) string {
	return prefix + hex.EncodeToString(newMACKey([]byte(secret), hf).sign(nil, body))
}
