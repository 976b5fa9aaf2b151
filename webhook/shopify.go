package webhook

import (
	"encoding/base64"
	"net/http"
	"time"

	"github.com/intakehq/intake/event"
)

// Shopify returns the verifier of Shopify's webhook signatures.
//
// X-Shopify-Hmac-Sha256 is the base64 HMAC-SHA256 of the body under the
// app's client secret. Shopify signs no timestamp. The event's ID is
// X-Shopify-Webhook-Id (or X-Shopify-Event-Id; one is required), its Type
// X-Shopify-Topic, and its Time X-Shopify-Triggered-At when present.
func Shopify(secrets ...string) *Scheme {
	s := newScheme("shopify", secrets, nil, nil, verifyShopify)
	s.headers = []string{"X-Shopify-Hmac-Sha256", "X-Shopify-Webhook-Id", "X-Shopify-Event-Id", "X-Shopify-Topic", "X-Shopify-Triggered-At", "X-Shopify-Shop-Domain"}
	s.guardDefault = true
	return s
}

func verifyShopify(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	var buf sigBuf
	sig, err := base64Header(&buf, h, "X-Shopify-Hmac-Sha256")
	if err != nil {
		return event.Event{}, err
	}
	if !verifyAny(s.keys, sig, body) {
		return event.Event{}, ErrSignatureMismatch
	}
	id := first(h, "X-Shopify-Webhook-Id")
	if id == "" {
		id = first(h, "X-Shopify-Event-Id")
	}
	if id == "" {
		return event.Event{}, malformed("missing X-Shopify-Webhook-Id header")
	}
	e := event.Event{ID: id, Type: first(h, "X-Shopify-Topic"), Payload: body}
	if at := first(h, "X-Shopify-Triggered-At"); at != "" {
		e.Time, _ = time.Parse(time.RFC3339Nano, at)
	}
	return e, nil
}

// SignShopify returns the X-Shopify-Hmac-Sha256, X-Shopify-Webhook-Id and
// X-Shopify-Topic headers for body, signed with secret.
func SignShopify(secret, id, topic string, body []byte) http.Header {
	mac := newMACKey([]byte(secret), nil).sign(nil, body)
	h := http.Header{}
	h.Set("X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(mac))
	h.Set("X-Shopify-Webhook-Id", id)
	h.Set("X-Shopify-Topic", topic)
	return h
}
