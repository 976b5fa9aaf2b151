package webhook

import (
	"crypto/ed25519"
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
// webhook-signature, a space-separated list of "<version>,<base64>"
// entries; the svix-id, svix-timestamp and svix-signature headers are
// accepted instead. The signed content is id "." timestamp "." body. A
// secret "whsec_…" (or bare base64) is a symmetric key: v1 entries are its
// HMAC-SHA256. A key "whpk_…" is an Ed25519 public key, base64 after the
// prefix: v1a entries are its signatures. Secrets of both kinds may be
// mixed; entries of other versions are ignored. The event's ID is the
// webhook-id, its Type and Time the payload's "type" and "timestamp"
// fields when present.
func StandardWebhooks(secrets ...string) *Scheme {
	var macs, pubs []string
	for _, sec := range secrets {
		if strings.HasPrefix(sec, "whpk_") {
			pubs = append(pubs, sec)
		} else {
			macs = append(macs, sec)
		}
	}
	s := newScheme("standard-webhooks", macs, decodeWhsec, sha256.New, verifyStandard)
	if len(macs) == 0 && len(pubs) > 0 {
		s.bad = nil // only public keys
	}
	if len(pubs) > 0 && s.bad == nil {
		s.addEd25519Keys(pubs, func(k string) ([]byte, error) {
			return base64.StdEncoding.DecodeString(strings.TrimPrefix(k, "whpk_"))
		}, `"whpk_" and the base64 of 32 bytes`)
	}
	if s.bad != nil {
		s.keys, s.edKeys = nil, nil
	}
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
	var ed [2]sigBuf // v1a: the first two entries (one, two while a key rotates)
	var eds [2][]byte
	ned := 0
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
			switch {
			case version == "v1" && len(s.keys) > 0:
				sawV1 = true
				set.addBase64(value)
			case version == "v1a" && len(s.edKeys) > 0:
				sawV1 = true
				if ned < len(eds) {
					if sig, ok := decodeBase64(ed[ned][:], value); ok {
						eds[ned] = sig
						ned++
					}
				}
			}
		}
	}
	if !sawV1 {
		return event.Event{}, ErrMalformedSignature
	}
	ok := set.n > 0 && set.verify(s.keys, body, id, ".", ts, ".")
	for _, sig := range eds[:ned] {
		ok = ok || verifyEd25519(s.edKeys, sig, body, id, ".", ts, ".")
	}
	if !ok {
		return event.Event{}, ErrSignatureMismatch
	}
	e := event.Event{ID: id, Payload: body}
	_ = jsonscan.Object(body, func(k, v []byte) bool {
		switch string(k) {
		case "type":
			e.Type, _ = jsonscan.String(v)
		case "timestamp":
			e.Time, _ = jsonscan.Time(v)
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

// SignStandardWebhooksEd25519 returns the webhook-id, webhook-timestamp
// and webhook-signature headers for body, signed at ts with the Ed25519
// private key: a "v1a" entry, which a verifier given the public key
// ("whpk_" and base64, see [StandardWebhooksPublicKey]) accepts.
func SignStandardWebhooksEd25519(key ed25519.PrivateKey, id string, ts time.Time, body []byte) http.Header {
	t := strconv.FormatInt(ts.Unix(), 10)
	msg := make([]byte, 0, len(id)+len(t)+2+len(body))
	msg = append(append(append(append(append(msg, id...), '.'), t...), '.'), body...)
	h := http.Header{}
	h.Set("Webhook-Id", id)
	h.Set("Webhook-Timestamp", t)
	h.Set("Webhook-Signature", "v1a,"+base64.StdEncoding.EncodeToString(ed25519.Sign(key, msg)))
	return h
}

// StandardWebhooksPublicKey returns the "whpk_" form of an Ed25519 public
// key, as [StandardWebhooks] takes it.
func StandardWebhooksPublicKey(pub ed25519.PublicKey) string {
	return "whpk_" + base64.StdEncoding.EncodeToString(pub)
}
