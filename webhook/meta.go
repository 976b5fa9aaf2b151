package webhook

import (
	"fmt"
	"net/http"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
)

// Meta returns the verifier of Meta's webhooks: Facebook, Instagram,
// WhatsApp Business and Messenger, given the verify token you chose when
// you configured the endpoint and the app secret(s).
//
// Meta checks the endpoint with a GET carrying hub.mode=subscribe,
// hub.verify_token and hub.challenge; the handler answers it with the
// challenge when the token matches (in constant time), 401 otherwise. This
// is the one scheme whose handler accepts GET. Deliveries are POSTs whose
// X-Hub-Signature-256 is "sha256=" and the hex HMAC-SHA256 of the body
// under the app secret. Meta signs no timestamp and sends no delivery id,
// so the event's ID is derived from the content and the replay guard is on
// by default; its Type is the body's "object" (page, instagram,
// whatsapp_business_account, …).
func Meta(verifyToken string, appSecrets ...string) *Scheme {
	s := newRequestScheme("meta", appSecrets, nil, nil, verifyMeta)
	if s.bad == nil {
		s.addTokens([]string{verifyToken})
	}
	s.headers = []string{"X-Hub-Signature-256"}
	s.get = true
	s.guardDefault = true
	return s
}

// missingParam is ErrMissingSignature naming a query parameter.
func missingParam(name string) error {
	return fmt.Errorf("%w: no query parameter %s", ErrMissingSignature, name)
}

// missingField is ErrMissingSignature naming a body field.
func missingField(name string) error {
	return fmt.Errorf("%w: no body field %q", ErrMissingSignature, name)
}

func verifyMeta(s *Scheme, r *Request) (event.Event, error) {
	if r.Method == http.MethodGet {
		q := r.query()
		switch {
		case q.Get("hub.mode") != "subscribe":
			return event.Event{}, malformed("hub.mode is not subscribe")
		case q.Get("hub.verify_token") == "":
			return event.Event{}, missingParam("hub.verify_token")
		case !s.tokenMatches(q.Get("hub.verify_token")):
			return event.Event{}, ErrSignatureMismatch
		}
		return event.Event{}, textReply(q.Get("hub.challenge"))
	}
	if err := verifyPrefixedHex(s, r.Header, "X-Hub-Signature-256", "sha256=", r.Body); err != nil {
		return event.Event{}, err
	}
	e := event.Event{Payload: r.Body}
	if v, ok := jsonscan.Field(r.Body, "object"); ok {
		e.Type, _ = jsonscan.String(v)
	}
	return e, nil
}
