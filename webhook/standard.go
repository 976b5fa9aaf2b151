package webhook

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
)

// StandardWebhooks returns the verifier of the Standard Webhooks
// specification, which Svix and many providers follow.
//
// The request carries webhook-id, webhook-timestamp (unix seconds) and
// webhook-signature, a space-separated list of "v1,<base64>" entries; the
// svix-id, svix-timestamp and svix-signature headers are accepted instead.
// The signed content is id "." timestamp "." body, under HMAC-SHA256 with
// the key that follows "whsec_" in the secret, base64-decoded. Entries of
// other versions (v1a) are ignored. The event's ID is the webhook-id, its
// Type and Time the payload's "type" and "timestamp" fields when present.
func StandardWebhooks(secrets ...string) *Scheme {
	s := newScheme("standard-webhooks", secrets, decodeWhsec, sha256.New, verifyStandard)
	s.headers = []string{"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature", "Svix-Id", "Svix-Timestamp", "Svix-Signature"}
	return s
}

func decodeWhsec(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.TrimPrefix(s, "whsec_"))
}

func verifyStandard(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	id, ts, sigs := first(h, "Webhook-Id"), first(h, "Webhook-Timestamp"), h["Webhook-Signature"]
	if id == "" || ts == "" || len(sigs) == 0 {
		// Incomplete: Svix's names, if they form a complete set.
		if sid, sts, ssigs := first(h, "Svix-Id"), first(h, "Svix-Timestamp"), h["Svix-Signature"]; sid != "" && sts != "" && len(ssigs) > 0 {
			id, ts, sigs = sid, sts, ssigs
		}
	}
	switch {
	case len(sigs) == 0:
		return event.Event{}, missingHeader("webhook-signature")
	case id == "":
		return event.Event{}, missingHeader("webhook-id")
	case ts == "":
		return event.Event{}, missingHeader("webhook-timestamp")
	}
	if _, err := s.checkTime(ts); err != nil {
		return event.Event{}, err
	}
	var set sigSet
	sawV1 := false
	for _, hv := range sigs {
		// Entries are separated by spaces; a hand-rolled split, since
		// strings.Fields checks every byte for Unicode spaces.
		for rest := hv; rest != "" && !set.full(); {
			var entry string
			if i := strings.IndexByte(rest, ' '); i >= 0 {
				entry, rest = rest[:i], rest[i+1:]
			} else {
				entry, rest = rest, ""
			}
			version, value, _ := strings.Cut(entry, ",")
			if version != "v1" {
				continue
			}
			sawV1 = true
			set.add(decodeBase64, value)
		}
	}
	switch {
	case !sawV1:
		return event.Event{}, ErrMalformedSignature
	case !set.verify(s.keys, body, id, ".", ts, "."):
		return event.Event{}, ErrSignatureMismatch
	}
	e := event.Event{ID: id, Payload: body}
	_ = jsonscan.Object(body, func(k, v []byte) bool {
		switch string(k) {
		case "type":
			e.Type, _ = jsonscan.String(v)
		case "timestamp":
			if str, ok := jsonscan.String(v); ok {
				e.Time, _ = time.Parse(time.RFC3339Nano, str)
			}
		}
		return e.Type != "" && !e.Time.IsZero()
	})
	return e, nil
}

// SignStandardWebhooks returns the webhook-id, webhook-timestamp and
// webhook-signature headers for body, signed with secret ("whsec_" and
// base64) at ts. It fails if the secret is not in that format.
func SignStandardWebhooks(secret, id string, ts time.Time, body []byte) (http.Header, error) {
	key, err := decodeWhsec(secret)
	if err != nil || len(key) == 0 || secret == "" {
		return nil, fmt.Errorf("%w: a Standard Webhooks secret is \"whsec_\" and base64", ErrNoSecret)
	}
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := newMACKey(key, sha256.New).sign(nil, body, id, ".", t, ".")
	h := http.Header{}
	h.Set("Webhook-Id", id)
	h.Set("Webhook-Timestamp", t)
	h.Set("Webhook-Signature", "v1,"+base64.StdEncoding.EncodeToString(mac))
	return h, nil
}
