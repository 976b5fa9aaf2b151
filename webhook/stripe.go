package webhook

import (
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/internal/jsonscan"
)

// Stripe returns the verifier of Stripe's webhook signatures.
//
// The Stripe-Signature header holds "t=<unix seconds>" and one or more
// "v1=<hex>" entries, comma-separated; v1 is HMAC-SHA256 of t "." body,
// keyed with the endpoint secret exactly as given ("whsec_…", not
// decoded). Other entries (v0, test-mode schemes) are ignored, and so are
// v1 entries past the eighth. The event's
// ID, Type and Time are the body's "id", "type" and "created", the same id
// Stripe's Events API returns, so a poller of that API dedupes against it.
func Stripe(secrets ...string) *Scheme {
	s := newScheme("stripe", secrets, nil, nil, verifyStripe)
	s.headers = []string{"Stripe-Signature"}
	return s
}

func verifyStripe(s *Scheme, h http.Header, body []byte) (event.Event, error) {
	values := h["Stripe-Signature"]
	if len(values) == 0 {
		return event.Event{}, missingHeader("Stripe-Signature")
	}
	// One pass over the header: the timestamp and the first few v1
	// signatures (a real header has one, two while a secret rotates).
	var (
		ts  string
		v1s [maxSignatures]string
		n   int
	)
	for _, hv := range values {
		for rest := hv; rest != ""; {
			var item string
			if i := strings.IndexByte(rest, ','); i >= 0 {
				item, rest = rest[:i], rest[i+1:]
			} else {
				item, rest = rest, ""
			}
			k, v, _ := strings.Cut(strings.TrimSpace(item), "=")
			switch {
			case k == "t":
				if ts != "" && ts != v {
					return event.Event{}, ErrMalformedSignature
				}
				ts = v
			case k == "v1" && n < len(v1s):
				v1s[n] = v
				n++
			}
		}
	}
	if ts == "" || n == 0 {
		return event.Event{}, ErrMalformedSignature
	}
	if _, err := s.checkTime(ts); err != nil {
		return event.Event{}, err
	}
	var set sigSet
	for _, v := range v1s[:n] {
		set.addHex(v)
	}
	if !set.verify(s.keys, body, ts, ".") {
		return event.Event{}, ErrSignatureMismatch
	}
	e := event.Event{Payload: body}
	err := jsonscan.Object(body, func(k, v []byte) bool {
		switch string(k) {
		case "id":
			e.ID, _ = jsonscan.String(v)
		case "type":
			e.Type, _ = jsonscan.String(v)
		case "created":
			if n, ok := jsonscan.Int(v); ok {
				e.Time = time.Unix(n, 0)
			}
		}
		return e.ID != "" && e.Type != "" && !e.Time.IsZero()
	})
	switch {
	case err != nil:
		return event.Event{}, malformed("body is not a JSON object")
	case e.ID == "":
		return event.Event{}, malformed(`body has no "id"`)
	}
	return e, nil
}

// SignStripe returns a Stripe-Signature header for body, signed with
// secret at ts.
func SignStripe(secret string, ts time.Time, body []byte) http.Header {
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := newMACKey([]byte(secret), nil).sign(nil, body, t, ".")
	h := http.Header{}
	h.Set("Stripe-Signature", "t="+t+",v1="+hex.EncodeToString(mac))
	return h
}
