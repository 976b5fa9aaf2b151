package webhook

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/intakehq/intake/event"
)

// SendGrid returns the verifier of SendGrid's signed Event Webhook, given
// the verification key the dashboard shows (base64 DER of an ECDSA P-256
// public key).
//
// X-Twilio-Email-Event-Webhook-Signature is the base64 ASN.1 ECDSA
// signature of the SHA-256 of X-Twilio-Email-Event-Webhook-Timestamp
// (unix seconds, ±5 min) followed by the body. The body is a JSON array of
// events sent as one batch: the event's ID is derived from the content, so
// a retried batch is a duplicate; iterate the array in the handler.
func SendGrid(verificationKeys ...string) *Scheme {
	s := newScheme("sendgrid", nil, nil, nil, verifySendGrid)
	s.bad = nil
	if len(verificationKeys) == 0 {
		s.bad = ErrNoSecret
	}
	for _, k := range verificationKeys {
		pub, err := parseECDSAP256(k)
		if k == "" || err != nil {
			s.bad = errors.Join(ErrNoSecret, errors.New("webhook: sendgrid verification key is not the base64 DER of a P-256 public key"))
			s.ecKeys = nil
			break
		}
		s.ecKeys = append(s.ecKeys, pub)
	}
	s.headers = []string{"X-Twilio-Email-Event-Webhook-Signature", "X-Twilio-Email-Event-Webhook-Timestamp"}
	return s
}

func verifySendGrid(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	hv, ts := first(h, "X-Twilio-Email-Event-Webhook-Signature"), first(h, "X-Twilio-Email-Event-Webhook-Timestamp")
	switch {
	case hv == "":
		return event.Event{}, missingHeader("X-Twilio-Email-Event-Webhook-Signature")
	case ts == "":
		return event.Event{}, missingHeader("X-Twilio-Email-Event-Webhook-Timestamp")
	}
	var buf [80]byte // an ASN.1 P-256 signature is at most 72 bytes
	der, ok := decodeBase64(buf[:], hv)
	if !ok {
		return event.Event{}, ErrMalformedSignature
	}
	if _, err := s.checkTime(ts); err != nil {
		return event.Event{}, err
	}
	if !verifyECDSA(s.ecKeys, der, body, ts) {
		return event.Event{}, ErrSignatureMismatch
	}
	return event.Event{Payload: body}, nil
}

// SignSendGrid returns the X-Twilio-Email-Event-Webhook-Signature and
// -Timestamp headers for body, signed at ts with the ECDSA private key.
func SignSendGrid(key *ecdsa.PrivateKey, ts time.Time, body []byte) (http.Header, error) {
	t := strconv.FormatInt(ts.Unix(), 10)
	sum := sha256.Sum256(append([]byte(t), body...))
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	h.Set("X-Twilio-Email-Event-Webhook-Signature", base64.StdEncoding.EncodeToString(sig))
	h.Set("X-Twilio-Email-Event-Webhook-Timestamp", t)
	return h, nil
}
