package webhook

import (
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
)

// TwitchTolerance is how old a Twitch EventSub message may be: Twitch
// tells receivers to refuse messages older than 10 minutes.
const TwitchTolerance = 10 * time.Minute

// Twitch returns the verifier of Twitch EventSub's webhook transport,
// given the subscription's secret.
//
// Twitch-Eventsub-Message-Signature is "sha256=" and the hex HMAC-SHA256
// of the message id, the timestamp and the body, concatenated, from
// Twitch-Eventsub-Message-Id and Twitch-Eventsub-Message-Timestamp
// (RFC 3339, ±10 min). A webhook_callback_verification message is answered
// by the handler itself with its challenge, after its signature verifies.
// The event's ID is the message id (the same on a retry), its Type the
// subscription type (Twitch-Eventsub-Subscription-Type) for notifications
// and "revocation" for revocations, its Time the message timestamp.
func Twitch(secrets ...string) *Scheme {
	s := newScheme("twitch", secrets, nil, nil, verifyTwitch)
	s.tolerance = TwitchTolerance
	s.headers = []string{"Twitch-Eventsub-Message-Id", "Twitch-Eventsub-Message-Timestamp", "Twitch-Eventsub-Message-Signature",
		"Twitch-Eventsub-Message-Type", "Twitch-Eventsub-Subscription-Type"}
	return s
}

func verifyTwitch(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	id, ts, hv := first(h, "Twitch-Eventsub-Message-Id"), first(h, "Twitch-Eventsub-Message-Timestamp"), first(h, "Twitch-Eventsub-Message-Signature")
	switch {
	case hv == "":
		return event.Event{}, missingHeader("Twitch-Eventsub-Message-Signature")
	case id == "":
		return event.Event{}, missingHeader("Twitch-Eventsub-Message-Id")
	case ts == "":
		return event.Event{}, missingHeader("Twitch-Eventsub-Message-Timestamp")
	}
	value, ok := strings.CutPrefix(hv, "sha256=")
	if !ok || len(ts) > 40 {
		return event.Event{}, ErrMalformedSignature
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return event.Event{}, ErrMalformedSignature
	}
	if _, err := s.checkTimeAt(at); err != nil {
		return event.Event{}, err
	}
	var buf sigBuf
	sig, valid := decodeHex(&buf, value)
	if !valid {
		return event.Event{}, ErrMalformedSignature
	}
	if !verifyAny(s.keys, sig, body, id, ts) {
		return event.Event{}, ErrSignatureMismatch
	}
	switch first(h, "Twitch-Eventsub-Message-Type") {
	case "webhook_callback_verification":
		raw, _ := jsonscan.Field(body, "challenge")
		challenge, _ := jsonscan.String(raw)
		if challenge == "" {
			return event.Event{}, malformed("verification without a challenge")
		}
		return event.Event{}, textReply(challenge)
	case "revocation":
		return event.Event{ID: id, Type: "revocation", Time: at, Payload: body}, nil
	}
	return event.Event{ID: id, Type: first(h, "Twitch-Eventsub-Subscription-Type"), Time: at, Payload: body}, nil
}

// SignTwitch returns the Twitch-Eventsub-Message-* headers for body,
// signed with secret, of the given message type ("notification",
// "webhook_callback_verification", "revocation") and subscription type.
func SignTwitch(secret, id, messageType, subscriptionType string, ts time.Time, body []byte) http.Header {
	t := ts.UTC().Format(time.RFC3339Nano)
	mac := newMACKey([]byte(secret), nil).sign(nil, body, id, t)
	h := http.Header{}
	h.Set("Twitch-Eventsub-Message-Id", id)
	h.Set("Twitch-Eventsub-Message-Timestamp", t)
	h.Set("Twitch-Eventsub-Message-Signature", "sha256="+hex.EncodeToString(mac))
	h.Set("Twitch-Eventsub-Message-Type", messageType)
	h.Set("Twitch-Eventsub-Subscription-Type", subscriptionType)
	return h
}
